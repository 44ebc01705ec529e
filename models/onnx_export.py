"""ONNX export of a trained model: one graph per model, the ROI crop in, the score and the map out.

The graph's input ``image`` is the RGB crop as uint8 ``(1, H, W, 3)`` (any height and width: the
channels-last layout of a decoded image). Everything the studio does with it is inside: the intensity
standardisation, the antialiased resize to the profile's input size and the scaling to [-1, 1]
(``models.graph_preprocess``, byte-exact with the estimators' own path), the backbone and the learned
state (classifier head, positional patch memory, projection, position scale, calibration). Outputs are
named by the method's ``export_outputs``; the first is always ``score`` (in [0, 1], defective above the
threshold of the sidecar), the second ``map`` (the defect map at the patch grid) where the method has one.

A method exports by giving its estimator ``export_module()`` (an ``nn.Module`` wrapping its torch model
with the preprocessing), ``export_outputs``, ``judge_outputs`` and ``judge_from(forward, images, tta)``
(its judge with the network part passed in), as the three methods of ``models/`` do.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

INPUT_NAME = "image"
OPSET = 17
EXPORT_FORMAT = 1  # bump when the graph's contents change: cached graphs of another format are re-exported
TRACE_SHAPE = (1, 301, 263, 3)  # any size but the network's: the resize must not be specialised away


class ExportError(RuntimeError):
    """A model that cannot be exported to ONNX."""


def exportable(model: Any) -> bool:
    """Whether ``model``'s method has the export hooks (``export_module`` and friends)."""
    return all(hasattr(model, name) for name in ("export_module", "export_outputs", "judge_outputs", "judge_from"))


def input_spec(model: Any) -> dict[str, Any]:
    """What the graph takes and gives, for the sidecar and for callers in other runtimes."""
    return {"name": INPUT_NAME, "dtype": "uint8", "shape": [1, "height", "width", 3], "layout": "NHWC, RGB",
            "note": "the region-of-interest crop, any size; resized, standardised and scaled inside the graph",
            "outputs": list(model.export_outputs)}


def export_onnx(model: Any, path: Path) -> Path:
    """Write the graph of a fitted ``model`` to ``path`` atomically (a temporary file in the same folder,
    checked with ``onnx.checker``, then renamed: a concurrent reader or exporter never sees half a file)."""
    import onnx  # only when exporting (the command line loads this module for every command)

    if not exportable(model):
        raise ExportError(f"the {getattr(model, 'method', type(model).__name__)} method has no ONNX export")
    module = model.export_module().eval()
    if any(t.device.type != "cpu" for t in (*module.parameters(), *module.buffers())):
        module = copy.deepcopy(module).cpu()  # the shared models stay where they are
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes about Python values: sizes are read as tensors
            torch.onnx.export(module, (torch.zeros(TRACE_SHAPE, dtype=torch.uint8),), temporary, dynamo=False,
                              input_names=[INPUT_NAME], output_names=list(model.export_outputs),
                              dynamic_axes={INPUT_NAME: {1: "height", 2: "width"}}, opset_version=OPSET)
        onnx.checker.check_model(temporary, full_check=True)
        os.replace(temporary, path)
    except Exception as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise
        raise ExportError(f"exporting the {model.method} model to ONNX failed: {error}") from error
    return path
