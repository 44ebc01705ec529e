"""Every registered inspection method follows models.base.InspectionMethod (fit, judge, tta, the
training report, check_training_set, save / load) and the one artifact scheme; legacy artifacts load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.artifacts import META_FILE, ArtifactError, load_artifact, save_artifact
from models.base import InspectionMethod, Judgement, NotFittedError, TrainingSetError
from models.registry import AUGMENTED, DEFAULT_METHOD, build, get_method, load_model, method_names

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_models"
N_GOOD, N_DEFECT = 8, 6
# Smaller than the product's recipes (build()), so that each method fits in seconds.
QUICK = {"anomaly": {"synthetic_images": 16, "projection_dims": 8}, "classifier": {"projection_dims": 8}}


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def cells(elpv_subset: Path) -> dict[str, list[np.ndarray]]:
    return {name: [_rgb(p) for p in sorted((elpv_subset / name).glob("*.png"))] for name in ("good", "defective")}


@pytest.fixture(scope="module")
def probes(cells) -> list[np.ndarray]:
    """Held-out cells: two goods, two defectives, and one not square."""
    return [cells["good"][-1], cells["good"][-2], cells["defective"][-1], cells["defective"][-2],
            np.ascontiguousarray(cells["defective"][-3][:, :200])]


@pytest.fixture(scope="module", params=method_names())
def fitted(request, cells) -> InspectionMethod:
    name = request.param
    model = get_method(name)(profile="fast", good_class="good", seed=0, **QUICK.get(name, {}))
    images = cells["good"][:N_GOOD] + cells["defective"][:N_DEFECT]
    stages = []
    assert model.fit(images, ["good"] * N_GOOD + ["crack"] * N_DEFECT,
                     progress=lambda stage, fraction: stages.append((stage, fraction))) is model
    assert stages and all(0.0 <= f <= 1.0 for _, f in stages)
    return model


def test_the_registry_names_each_method_once() -> None:
    assert method_names()[:3] == ["classifier", "anomaly", "knn"]
    for name in method_names():
        cls = get_method(name)
        assert cls.method == name and isinstance(cls.format_version, int)
        assert cls.learns_from in ("labelled", "good")
        model = build(name, profile="fast", good_class="ok", seed=3)
        for member in ("get_params", "fit", "judge", "training_report", "check_training_set", "save", "load"):
            assert callable(getattr(model, member)), member
        assert (model.profile, model.good_class, model.seed) == ("fast", "ok", 3)
        assert model.get_params()["good_class"] == "ok"
        assert not [k for k in vars(model) if k.endswith("_")]  # the constructor only stores hyper-parameters
    with pytest.raises(ValueError, match="unknown model method 'svm'; choose one of classifier, anomaly, knn"):
        get_method("svm")
    assert get_method(DEFAULT_METHOD).learns_from == "labelled" and set(AUGMENTED) <= set(method_names())



@pytest.mark.parametrize("name", method_names())
def test_using_a_model_before_fit_is_a_clear_error(name: str, cells, tmp_path: Path) -> None:
    model = build(name, profile="fast", good_class="good")
    for call in (lambda: model.judge(cells["good"][:1]), lambda: model.save(tmp_path / "never"),
                 lambda: model.training_report()):
        with pytest.raises(NotFittedError):
            call()
    assert not (tmp_path / "never").exists()


def test_judge_gives_one_judgement_per_image(fitted, probes) -> None:
    judgements = fitted.judge(probes)
    assert len(judgements) == len(probes) and all(isinstance(j, Judgement) for j in judgements)
    for judgement in judgements:
        assert math.isfinite(judgement.score) and 0.0 <= judgement.score <= 1.0
        if judgement.map is not None:
            assert judgement.map.ndim == 2 and judgement.map.dtype == np.float32
            assert 0.0 <= judgement.map.min() and judgement.map.max() <= 1.0
        if fitted.learns_from == "good":
            assert judgement.probabilities == {} and judgement.label is None
        else:
            assert set(judgement.probabilities) == {"good", "crack"} and judgement.label == "crack"
            assert sum(judgement.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
            assert judgement.score == pytest.approx(1.0 - judgement.probabilities["good"], abs=1e-6)
    assert 0.0 < fitted.threshold_ < 1.0 and 0.0 < fitted.review_band_ < 0.5
    assert fitted.judge([]) == []


def test_tta_averages_the_image_and_its_mirror(fitted, probes) -> None:
    image, mirror = probes[2], np.ascontiguousarray(probes[2][:, ::-1])
    both = fitted.judge([image, mirror])
    tta = fitted.judge([image], tta=True)[0]
    assert tta.score == pytest.approx((both[0].score + both[1].score) / 2, abs=1e-5)
    if tta.map is not None:
        np.testing.assert_allclose(tta.map, (both[0].map + both[1].map[:, ::-1]) / 2, atol=1e-5)
    symmetric = np.ascontiguousarray(np.concatenate([image[:, :150], image[:, :150][:, ::-1]], axis=1))
    assert fitted.judge([symmetric], tta=True)[0].score == pytest.approx(fitted.judge([symmetric])[0].score, abs=1e-5)


def test_the_training_report_has_the_common_keys(fitted) -> None:
    report = fitted.training_report(sample_ids=list(range(100, 100 + N_GOOD + N_DEFECT)))
    assert {"validation", "reference_scores", "notices", "n_samples"} <= report.keys()
    assert report["reference_scores"] == fitted.reference_scores_ and len(fitted.reference_scores_) == N_GOOD
    assert all(math.isfinite(s) for s in fitted.reference_scores_)
    json.dumps(report)  # stored as JSON with the version
    if fitted.learns_from == "good":
        assert report["n_samples"] == N_GOOD and report["validation"]["ignored_non_good"] == N_DEFECT
        assert any(f"{N_DEFECT} image(s) not labelled 'good' were ignored" in n for n in report["notices"])
    else:
        assert report["class_counts"] == {"crack": N_DEFECT, "good": N_GOOD}
        assert all(entry["sample_id"] >= 100 for entry in report["validation"]["misclassified_samples"])


def test_save_and_load_give_the_same_judgements(fitted, probes, tmp_path: Path) -> None:
    fitted.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / META_FILE).read_text())
    assert meta["method"] == fitted.method and meta["format"] == fitted.format_version
    assert meta["params"] == json.loads(json.dumps(fitted.get_params()))
    loaded = load_model(tmp_path / "model")
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    assert (loaded.threshold_, loaded.review_band_) == (fitted.threshold_, fitted.review_band_)
    assert loaded.reference_scores_ == fitted.reference_scores_
    for before, after in zip(fitted.judge(probes, tta=True), loaded.judge(probes, tta=True), strict=True):
        assert after.score == pytest.approx(before.score, abs=1e-6)
        if before.map is not None:
            np.testing.assert_allclose(after.map, before.map, atol=1e-6)


def _rewrite(folder: Path, target: Path, change_meta=None, change_tensors=None) -> Path:
    tensors, meta = load_artifact(folder)
    if change_meta:
        change_meta(meta)
    if change_tensors:
        change_tensors(tensors)
    save_artifact(target, tensors, meta)
    return target


def test_damaged_artifacts_are_refused_at_load(fitted, tmp_path: Path) -> None:
    fitted.save(tmp_path / "model")
    cls = type(fitted)

    def poison(tensors: dict[str, torch.Tensor]) -> None:
        name = next(n for n, t in tensors.items() if t.is_floating_point() and t.numel())
        poisoned = tensors[name].clone()
        poisoned.view(-1)[0] = float("nan")
        tensors[name] = poisoned

    cases = {
        "nan": ({}, poison, "NaN or infinite"),
        "profile": ({"params": {**fitted.get_params(), "profile": "huge"}}, None, "unknown profile 'huge'"),
        "format": ({"format": fitted.format_version + 1}, None, "older format.*retrain"),
        "method": ({"method": next(n for n in method_names() if n != fitted.method)}, None, "holds a"),
    }
    for case, (update, tensors, message) in cases.items():
        bad = _rewrite(tmp_path / "model", tmp_path / case, lambda meta, u=update: meta.update(u), tensors)
        with pytest.raises(ArtifactError, match=message):
            cls.load(bad)
        if case != "method":
            with pytest.raises(ArtifactError, match=message):
                load_model(bad)
    unknown = _rewrite(tmp_path / "model", tmp_path / "unknown", lambda meta: meta.update(method="svm"))
    with pytest.raises(ArtifactError, match="unknown model method 'svm'"):
        load_model(unknown)


@pytest.mark.parametrize(("name", "counts", "message"), [
    ("classifier", {"good": 9}, "at least two classes .* train an anomaly model instead"),
    ("classifier", {"good": 5, "crack": 3, "dent": 1}, r"at least 5 images \(crack: 2 more, dent: 4 more\)"),
    ("classifier", {"crack": 5, "dent": 6, "good": 0}, "no 'good' images"),
    ("anomaly", {"good": 3, "crack": 40}, r"anomaly model needs at least 5 good images \(2 more\)"),
    ("knn", {}, r"kNN model needs at least 5 good images \(5 more\)"),
])
def test_check_training_set_says_what_to_add(name: str, counts: dict[str, int], message: str) -> None:
    with pytest.raises(TrainingSetError, match=message):
        get_method(name).check_training_set(counts, "good")


@pytest.mark.parametrize("name", method_names())
def test_check_training_set_accepts_a_usable_set(name: str) -> None:
    get_method(name).check_training_set({"good": 5, "crack": 5}, "good")


@pytest.mark.parametrize("name", ["classifier", "anomaly"])
def test_artifacts_from_before_the_registry_load_and_score_the_same(name: str, elpv_subset: Path) -> None:
    """Saved by the former code (tests/data/legacy_models/SOURCE.md); the shared kernel changes scores
    only at float rounding level."""
    assert "kind" in json.loads((LEGACY / name / META_FILE).read_text())
    expected = json.loads((LEGACY / "expected.json").read_text())
    model = load_model(LEGACY / name)
    assert model.method == name
    for probe, path in expected["probes"].items():
        score = model.judge([_rgb(elpv_subset / path)])[0].score
        assert score == pytest.approx(expected[name][probe], rel=1e-4, abs=1e-6)


def test_a_legacy_artifact_of_a_former_layout_asks_for_a_retrain(tmp_path: Path) -> None:
    older = _rewrite(LEGACY / "classifier", tmp_path / "older", lambda meta: meta.update(method="few-shot-positional"))
    with pytest.raises(ArtifactError, match="older format.*retrain the classifier"):
        load_model(older)
