"""``models export-onnx`` and the engine on onnxruntime (``STUDIO_RUNTIME=onnx``): a real tool trained on
the committed ELPV cells (classifier and kNN, cross-check), the same decisions and scores as PyTorch
through ``predict``, the graph cached next to the artifact, and PyTorch when a graph cannot be opened."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import core.inspect.models as loading
from core.audit import SYSTEM
from core.cli import main
from core.images import encode_png
from core.inspect.models import ModelCache, load_tool_models
from core.inspect.service import predict_image
from core.samples import import_path
from core.studio import Studio
from core.tools import create_tool
from core.training import train
from models.onnx_runtime import OnnxModel, graph_path
from tests.core.live.conftest import ELPV, cells, open_at, private_copy

pytestmark = pytest.mark.slow  # trains two models
TOOL = "cells"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("onnx-tool") / "data"
    studio = open_at(data_dir)
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    assert import_path(studio, TOOL, ELPV, actor=SYSTEM).imported == 40
    train(studio, TOOL, profile="fast", actor=SYSTEM)
    train(studio, TOOL, method="knn", profile="fast", actor=SYSTEM)
    studio.engine.dispose()
    return data_dir


@pytest.fixture
def studio(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    monkeypatch.setattr(loading, "CACHE", ModelCache())  # a fresh process: nothing loaded yet
    with private_copy(template, tmp_path / "data") as opened:
        yield opened


def predictions(studio: Studio, n: int = 6) -> list[dict]:
    """``predict`` of ``n`` good and ``n`` defective cells (every cell: tests/models/test_onnx.py)."""
    images = cells("good")[:n] + cells("defective")[:n]
    return [predict_image(studio, TOOL, f"{i}.png", encode_png(image), record=False, actor=SYSTEM).as_dict()
            for i, image in enumerate(images)]


def test_the_engine_on_onnxruntime_decides_as_on_torch(studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    on_torch = predictions(studio)
    monkeypatch.setattr(loading, "CACHE", ModelCache())
    monkeypatch.setattr(loading, "inference_runtime", lambda: "onnx")
    on_onnx = predictions(studio)
    loaded = load_tool_models(studio, TOOL)
    assert {m.method for m in loaded.models} == {"classifier", "knn"}
    assert all(isinstance(m.model, OnnxModel) for m in loaded.models)
    for model in loaded.models:
        assert model.model.graph == graph_path(model.model.graph.parent)  # cached next to the artifact
        assert (model.model.graph.parent / "model.json").is_file()
    for want, have in zip(on_torch, on_onnx, strict=True):
        assert have["decision"] == want["decision"] and have["label"] == want["label"]
        assert abs(have["score"] - want["score"]) <= TOLERANCE
        for method, opinion in want["models"].items():
            assert have["models"][method]["decision"] == opinion["decision"]
            assert abs(have["models"][method]["score"] - opinion["score"]) <= TOLERANCE
            assert have["models"][method]["threshold"] == opinion["threshold"]


def test_a_graph_that_cannot_be_opened_leaves_the_model_on_torch(studio: Studio, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    folders = sorted((studio.settings.models_dir).rglob("model.json"))
    for meta in folders:
        graph_path(meta.parent).write_bytes(b"not a graph")
    monkeypatch.setattr(loading, "inference_runtime", lambda: "onnx")
    with caplog.at_level(logging.WARNING, logger=loading.__name__):
        loaded = load_tool_models(studio, TOOL)
    assert not any(isinstance(m.model, OnnxModel) for m in loaded.models)
    assert "runs on PyTorch" in caplog.text
    assert predictions(studio, n=1)[0]["decision"] in {"pass", "fail", "review"}


def test_export_onnx_writes_a_graph_and_a_sidecar_per_active_model(studio: Studio, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STUDIO_DATA_DIR", str(studio.settings.data_dir))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    out = tmp_path / "exported"
    assert main(["models", "export-onnx", "--tool", TOOL, "--out", str(out)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    loaded = {m.method: m for m in load_tool_models(studio, TOOL).models}
    assert sorted(s["method"] for s in printed) == sorted(loaded)
    image = cells("defective")[0]
    expected = predict_image(studio, TOOL, "x.png", encode_png(image), record=False, actor=SYSTEM).as_dict()["models"]
    for sidecar in printed:
        assert json.loads((out / sidecar["file"].replace(".onnx", ".json")).read_text()) == sidecar
        model = loaded[sidecar["method"]]
        assert (sidecar["version"], sidecar["threshold"], sidecar["review_band"]) == (
            model.version_id, model.threshold, model.review_band)
        assert sidecar["good_class"] == "good" and sidecar["input"]["dtype"] == "uint8"
        assert sidecar["profile"] == "fast" and sidecar["outputs"][0] == "score"
        graph = out / sidecar["file"]
        onnx.checker.check_model(str(graph), full_check=True)
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        score = float(session.run(["score"], {"image": np.ascontiguousarray(image)[None]})[0][0])
        assert abs(score - expected[sidecar["method"]]["score"]) <= TOLERANCE


def test_export_onnx_of_an_untrained_tool_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    studio = open_at(tmp_path / "data")
    create_tool(studio, "empty", "good,defective", actor=SYSTEM)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["models", "export-onnx", "--tool", "empty", "--out", str(tmp_path / "out")]) == 1
    assert "no trained model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
