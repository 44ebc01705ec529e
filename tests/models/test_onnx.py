"""ONNX parity: every method, every profile, every image of tests/data: onnxruntime's scores equal the
PyTorch scores within 1e-4 and the decisions are identical. Small real models (a few committed ELPV
cells each), trained once per profile."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from PIL import Image

from core.inspect.decision import decide
from models.artifacts import META_FILE, WEIGHTS_FILE
from models.base import Judgement
from models.knn import KnnDetector
from models.onnx_export import INPUT_NAME, export_onnx
from models.onnx_runtime import OnnxModel, graph_path, load_onnx
from models.profiles import PROFILES
from models.registry import get_method, method_names

pytestmark = pytest.mark.slow  # trains nine small models (./test.sh runs it; -m "not slow" leaves it out)

ELPV = Path(__file__).resolve().parents[1] / "data" / "elpv"
TOLERANCE = 1e-4
QUICK = {"anomaly": {"synthetic_images": 12}}  # fewer synthetic defects: quicker to fit, same inference


def load(label: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted((ELPV / label).glob("*.png"))]


GOOD, DEFECTIVE = load("good"), load("defective")
ALL = GOOD + DEFECTIVE  # every image of tests/data


@dataclass
class Trained:
    """One method of one profile: the estimator, its onnxruntime twin and both judgements of ``ALL``."""

    model: Any
    twin: OnnxModel
    expected: list[Judgement]
    got: list[Judgement]


@pytest.fixture(scope="module", params=list(PROFILES))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    """Per profile: each registered method trained on a few cells, its onnxruntime twin (graph exported) and the
    judgements of every image by both."""
    profile = request.param
    images = GOOD[:6] + DEFECTIVE[:5]
    labels = ["good"] * 6 + ["crack"] * 5
    models = {name: get_method(name)(profile=profile, good_class="good", **QUICK.get(name, {})).fit(images, labels)
              for name in method_names()}
    folder = tmp_path_factory.mktemp(f"onnx-{profile}")
    result = {}
    for name, model in models.items():
        twin = load_onnx(model, folder / name)
        result[name] = Trained(model, twin, model.judge(ALL), twin.judge(ALL))
    return result


def verdict(model: Any, score: float, label: str | None) -> str:
    return decide(score, model.good_class, label, model.threshold_, model.review_band_).decision


@pytest.mark.parametrize("method", method_names())
def test_onnxruntime_scores_and_decisions_equal_torch(trained: dict[str, Trained], method: str) -> None:
    model = trained[method].model
    for want, have in zip(trained[method].expected, trained[method].got, strict=True):
        assert abs(want.score - have.score) <= TOLERANCE
        assert verdict(model, want.score, want.label) == verdict(model, have.score, have.label)
        assert want.label == have.label
        assert want.probabilities.keys() == have.probabilities.keys()
        assert all(abs(want.probabilities[k] - have.probabilities[k]) <= TOLERANCE for k in want.probabilities)
        assert (want.map is None) == (have.map is None)
        if want.map is not None:
            assert want.map.shape == have.map.shape
            assert np.abs(want.map - have.map).max() <= 1e-3


def test_test_time_augmentation_the_same_way(trained: dict[str, Trained]) -> None:
    some = GOOD[-1:] + DEFECTIVE[-1:]
    for entry in trained.values():
        for want, have in zip(entry.model.judge(some, tta=True), entry.twin.judge(some, tta=True), strict=True):
            assert abs(want.score - have.score) <= TOLERANCE


def test_the_graph_alone_gives_the_score(trained: dict[str, Trained]) -> None:
    """What a user's own runtime sees: one valid graph, uint8 crop in, ``score`` first (and ``map``)."""
    for entry in trained.values():
        onnx.checker.check_model(str(entry.twin.graph), full_check=True)
        session = entry.twin.session
        assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
        assert [o.name for o in session.get_outputs()] == list(entry.model.export_outputs)
        for image, judgement in zip(ALL[::13], entry.expected[::13], strict=True):
            score = session.run(["score"], {INPUT_NAME: image[None]})[0]
            assert score.shape == (1,)
            assert abs(float(score[0]) - judgement.score) <= TOLERANCE


def test_export_replaces_the_file_whole(tmp_path: Path) -> None:
    model = KnnDetector(profile="fast").fit(GOOD[:4])
    path = graph_path(tmp_path)
    path.write_bytes(b"stale")
    export_onnx(model, path)
    onnx.checker.check_model(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left behind


EXPORTER = """
import sys, time
from pathlib import Path
import numpy as np
from models.registry import load_model
from models.onnx_runtime import load_onnx
folder, go = Path(sys.argv[1]), Path(sys.argv[2])
model = load_model(folder)
deadline = time.monotonic() + 120
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
twin = load_onnx(model, folder)
print(twin.judge([np.zeros((50, 60, 3), "uint8")])[0].score)
"""


def test_two_processes_exporting_at_once_leave_one_whole_graph(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    KnnDetector(profile="fast").fit(GOOD[:4]).save(folder)
    go = tmp_path / "go"
    root = Path(__file__).resolve().parents[2]
    workers = [subprocess.Popen([sys.executable, "-c", EXPORTER, str(folder), str(go)], cwd=root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    go.touch()  # both start exporting as soon as they have loaded the model
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1  # the same score from both
    onnx.checker.check_model(str(graph_path(folder)), full_check=True)
    assert sorted(p.name for p in folder.iterdir()) == sorted([META_FILE, WEIGHTS_FILE,
                                                               graph_path(folder).name])
