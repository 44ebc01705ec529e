"""Inspecting images with a tool's active model and recording the inspections."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.decision import ANOMALY, CLASSIFIER, Verdict, combine, decide, decide_anomaly, models_to_run
from core.errors import NotFoundError, StudioError
from core.images import ImageRejectedError, decode_image, encode_png
from core.reviews import drawn_for_audit
from core.studio import Studio
from core.tools import DEFAULT_SETTINGS, require_tool
from models.anomaly import AnomalyResult, PatchCoreDetector
from models.artifacts import ArtifactError
from models.classifier import FewShotClassifier, load_classifier
from storage import repository as repo

MODEL_CACHE_SIZE = 8


@dataclass(frozen=True)
class ActiveModel:
    """What predicting needs of a tool: its loaded model and decision settings."""

    tool_id: int
    version_id: int
    model: FewShotClassifier
    good_class: str
    threshold: float
    review_band: float


class ModelCache:
    """Loaded models keyed by artifact folder, least recently used dropped first (thread-safe)."""

    def __init__(self, size: int = MODEL_CACHE_SIZE) -> None:
        self.size = size
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: str, loader: Any) -> Any:
        with self._lock:
            if folder in self._models:
                self._models.move_to_end(folder)
                return self._models[folder]
        model = loader()
        with self._lock:
            self._models[folder] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model


_cache = ModelCache()


def active_model(studio: Studio, tool_name: str) -> ActiveModel:
    """The tool's active model, loaded once per process; clear errors when there is none."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        if tool.active_model_id is None:
            raise NotFoundError(f"tool {tool_name!r} has no trained model yet: train one first")
        version = repo.get_model_version(session, tool.active_model_id)
        user_settings = dict(tool.settings or {})
        folder = studio.settings.models_dir / version.artifact_dir
        tool_id, version_id, good = tool.id, version.id, tool.good_class
    try:
        model = _cache.get(str(folder), lambda: load_classifier(folder))
    except ArtifactError as error:
        raise StudioError(f"the model of tool {tool_name!r} cannot be loaded: {error}. Retrain the tool.") from error
    # the calibrated threshold and band of the version, unless the user moved them (tool settings)
    threshold = user_settings.get("threshold", model.threshold_)
    band = user_settings.get("review_band", model.review_band_)
    return ActiveModel(tool_id, version_id, model, good, float(threshold), float(band))


@dataclass(frozen=True)
class ActiveAnomaly:
    """A tool's loaded anomaly model and its decision settings."""

    version_id: int
    model: PatchCoreDetector
    threshold: float  # on the normalised scale (0.5 = the calibrated threshold)
    review_band: float


@dataclass(frozen=True)
class ToolModels:
    """Every model a prediction may use under the tool's policy; ``errors`` say why one is missing."""

    tool_id: int
    good_class: str
    policy: str
    classifier: ActiveModel | None
    anomaly: ActiveAnomaly | None
    errors: dict[str, str]

    def available(self) -> set[str]:
        return {name for name, model in ((CLASSIFIER, self.classifier), (ANOMALY, self.anomaly)) if model}


def _load_or_error(folder: Any, loader: Any, what: str, tool_name: str) -> tuple[Any, str | None]:
    try:
        return _cache.get(str(folder), loader), None
    except ArtifactError as error:
        return None, f"the {what} of tool {tool_name!r} cannot be loaded: {error}. Retrain it."


def tool_models(studio: Studio, tool_name: str) -> ToolModels:
    """The tool's active classifier and anomaly model, each loaded once per process.

    A model that is not trained or fails to load is None, with the reason in ``errors``; raises a
    clear error when the tool has no usable model at all.
    """
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        user_settings = dict(tool.settings or {})
        settings = {**DEFAULT_SETTINGS, **user_settings}
        folders = {}
        for kind, version_id in ((CLASSIFIER, tool.active_model_id), (ANOMALY, tool.active_anomaly_id)):
            if version_id is not None:
                folders[kind] = (version_id, studio.settings.models_dir / repo.get_model_version(session, version_id).artifact_dir)
        tool_id, good = tool.id, tool.good_class
    if not folders:
        raise NotFoundError(f"tool {tool_name!r} has no trained model yet: train one first")
    errors: dict[str, str] = {}
    classifier = anomaly = None
    band = float(settings["review_band"])
    if CLASSIFIER in folders:
        version_id, folder = folders[CLASSIFIER]
        model, errors[CLASSIFIER] = _load_or_error(folder, lambda: load_classifier(folder), "classifier", tool_name)
        if model is not None:  # the version's calibrated threshold and band unless the user moved them
            classifier = ActiveModel(tool_id, version_id, model, good,
                                     float(user_settings.get("threshold", model.threshold_)),
                                     float(user_settings.get("review_band", model.review_band_)))
    if ANOMALY in folders:
        version_id, folder = folders[ANOMALY]
        model, errors[ANOMALY] = _load_or_error(folder, lambda: PatchCoreDetector.load(folder), "anomaly model", tool_name)
        if model is not None:
            anomaly = ActiveAnomaly(version_id, model, float(settings["anomaly_threshold"]), band)
    errors = {k: v for k, v in errors.items() if v}
    if classifier is None and anomaly is None:
        raise StudioError(" ".join(errors.values()))
    return ToolModels(tool_id, good, str(settings["policy"]), classifier, anomaly, errors)


@dataclass(frozen=True)
class Prediction:
    path: str
    verdict: Verdict
    scores: dict[str, float]
    model_version: int
    ms: float
    inspection_id: int | None = None
    anomaly_score: float | None = None
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # each model's opinion (or error)
    degraded: bool = False
    anomaly: AnomalyResult | None = None  # the map and regions, when the anomaly model ran

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "decision": self.verdict.decision, "label": self.verdict.label,
                "score": round(self.verdict.score, 6), "scores": {k: round(v, 6) for k, v in self.scores.items()},
                "model_version": self.model_version, "ms": round(self.ms, 2),
                "inspection_id": self.inspection_id,
                "anomaly_score": None if self.anomaly_score is None else round(self.anomaly_score, 6),
                "models": self.models, "degraded": self.degraded,
                "regions": [r.as_dict()["box"] for r in self.anomaly.regions] if self.anomaly else []}


def classify(model: ActiveModel, rgb: np.ndarray) -> tuple[Verdict, dict[str, float]]:
    """Verdict and class probabilities of one RGB image."""
    probabilities = model.model.predict_proba([rgb])[0]
    scores = {name: float(p) for name, p in zip(model.model.classes_, probabilities, strict=True)}
    return decide(scores, model.good_class, model.threshold, model.review_band), scores


def opinion(verdict: Verdict, version_id: int) -> dict[str, Any]:
    """One model's opinion as stored on an inspection and printed by ``predict``."""
    return {"version": version_id, "decision": verdict.decision, "label": verdict.label,
            "score": round(verdict.score, 6)}


def record_inspection(studio: Studio, model: ActiveModel | ToolModels, verdict: Verdict, scores: dict[str, float],
                      ms: float, image: bytes | None, station: str = "default",
                      created_at: Any = None, *, model_version_id: int | None = None,
                      anomaly_score: float | None = None, opinions: dict[str, Any] | None = None,
                      degraded: bool = False) -> int:
    """Store one inspection with each model's opinion; the image is kept for fail and review decisions
    and for passes drawn for audit (``audit_share`` of the tool), which go to the review queue too."""
    audit = verdict.decision == "pass" and drawn_for_audit(studio, model.tool_id)
    key = None
    if image is not None and (verdict.decision != "pass" or audit):
        key, _ = studio.images.put(image, "png")
    if model_version_id is None and isinstance(model, ActiveModel):
        model_version_id = model.version_id
    fields: dict[str, Any] = dict(
        tool_id=model.tool_id, station=station, model_version_id=model_version_id,
        decision=verdict.decision, label=verdict.label, score=verdict.score, scores=scores,
        latency_ms=ms, image_key=key, needs_review=verdict.decision == "review" or audit,
        anomaly_score=anomaly_score, opinions=opinions or {}, degraded=degraded,
    )
    if created_at is not None:
        fields["created_at"] = created_at
    with studio.transaction() as session:
        return repo.add_inspection(session, **fields).id


def predict_image(studio: Studio, tool_name: str, name: str, data: bytes, record: bool = True,
                  station: str = "default") -> Prediction:
    """Inspect one image given as file bytes under the tool's policy; raises ImageRejectedError for
    unusable files."""
    models = tool_models(studio, tool_name)
    started = time.perf_counter()
    rgb = decode_image(data).rgb
    prediction = inspect_rgb(models, name, rgb)
    ms = (time.perf_counter() - started) * 1000
    inspection_id = None
    if record:
        inspection_id = record_inspection(
            studio, models, prediction.verdict, prediction.scores, ms, encode_png(rgb), station,
            model_version_id=prediction.model_version, anomaly_score=prediction.anomaly_score,
            opinions=prediction.models, degraded=prediction.degraded)
    return replace(prediction, ms=ms, inspection_id=inspection_id)


def inspect_rgb(models: ToolModels, name: str, rgb: np.ndarray) -> Prediction:
    """Each deciding model's opinion of one RGB image and the verdict the tool's policy makes of them."""
    used, degraded = models_to_run(models.policy, models.available())
    verdicts: dict[str, Verdict] = {}
    opinions: dict[str, dict[str, Any]] = {kind: {"error": error} for kind, error in models.errors.items()}
    scores: dict[str, float] = {}
    result: AnomalyResult | None = None
    if CLASSIFIER in used and models.classifier is not None:
        verdicts[CLASSIFIER], scores = classify(models.classifier, rgb)
        opinions[CLASSIFIER] = opinion(verdicts[CLASSIFIER], models.classifier.version_id)
    if ANOMALY in used and models.anomaly is not None:
        anomaly = models.anomaly
        result = anomaly.model.predict([rgb], threshold=anomaly.threshold)[0]
        verdicts[ANOMALY] = decide_anomaly(result.score, models.good_class, anomaly.threshold, anomaly.review_band)
        opinions[ANOMALY] = opinion(verdicts[ANOMALY], anomaly.version_id)
    deciding = models.classifier if CLASSIFIER in verdicts else models.anomaly
    assert deciding is not None
    return Prediction(name, combine(verdicts), scores, deciding.version_id, 0.0,
                      anomaly_score=None if result is None else result.score, models=opinions,
                      degraded=degraded, anomaly=result)


def predict_files(studio: Studio, tool_name: str, files: list[tuple[str, bytes | None]], record: bool = True,
                  station: str = "default") -> list[dict[str, Any]]:
    """One result dict per file (``{"path", "error"}`` for a file that cannot be inspected)."""
    tool_models(studio, tool_name)  # fail once, clearly, when the tool has no usable model
    results: list[dict[str, Any]] = []
    for name, data in files:
        if data is None:
            results.append({"path": name, "error": "cannot read file"})
            continue
        try:
            results.append(predict_image(studio, tool_name, name, data, record, station).as_dict())
        except ImageRejectedError as error:
            results.append({"path": name, "error": str(error)})
    return results
