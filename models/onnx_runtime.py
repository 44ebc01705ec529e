"""A trained model judged by onnxruntime: the estimator's own ``judge`` contract and Judgements, with
its network part (``judge_outputs``) computed by the exported graph instead of PyTorch.

The graph is exported next to the model's artifact on first use (``graph_path``) and reused after;
the export is atomic (``models.onnx_export``), so two processes exporting at once both end with a
whole file. Test-time augmentation, map upsampling, calibration and regions stay in the estimator's
``judge_from``, shared with its PyTorch path.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models.base import Judgement
from models.onnx_export import EXPORT_FORMAT, INPUT_NAME, export_onnx

INTRA_OP_THREADS = 2  # the studio's PCs have a few cores; more threads fight the camera and the browser


def graph_path(folder: Path) -> Path:
    """Where the graph of the model in artifact ``folder`` is cached."""
    return Path(folder) / f"runtime-{EXPORT_FORMAT}.onnx"


def session_options(threads: int = INTRA_OP_THREADS) -> ort.SessionOptions:
    """Full graph optimisation, ``threads`` intra-op threads, sequential execution."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    return options


class OnnxModel:
    """``estimator`` with ``judge`` run through an onnxruntime session of its exported graph; every other
    attribute (``threshold_``, ``review_band_``, ``learns_from``, ``classes_``, ...) is the estimator's."""

    runtime = "onnx"

    def __init__(self, estimator: Any, graph: Path, threads: int = INTRA_OP_THREADS) -> None:
        self.estimator = estimator
        self.graph = Path(graph)
        self.session = ort.InferenceSession(str(graph), session_options(threads), providers=["CPUExecutionProvider"])
        self._outputs = list(estimator.judge_outputs)

    def __getattr__(self, name: str) -> Any:  # only called for attributes the wrapper itself lacks
        if name == "estimator":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.estimator, name)

    def forward(self, images: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """The graph's ``judge_outputs`` for RGB uint8 images ``(H, W, 3)``, one run per image (batch 1),
        stacked along axis 0."""
        rows = [self.session.run(self._outputs, {INPUT_NAME: np.ascontiguousarray(image, dtype=np.uint8)[None]})
                for image in images]
        return tuple(np.concatenate([row[i] for row in rows]) for i in range(len(self._outputs)))

    def judge(self, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        return self.estimator.judge_from(self.forward, images, tta=tta)


_export_lock = threading.Lock()


def load_onnx(estimator: Any, folder: Path) -> OnnxModel:
    """``estimator`` (loaded from artifact ``folder``) backed by its graph, exported on first use."""
    path = graph_path(folder)
    with _export_lock:  # one export per process at a time; other processes are safe through os.replace
        if not path.is_file():
            export_onnx(estimator, path)
    return OnnxModel(estimator, path)
