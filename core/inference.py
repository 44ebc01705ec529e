"""Inspecting images with a tool's active model and recording the inspections."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.decision import Verdict, decide
from core.errors import NotFoundError, StudioError
from core.images import ImageRejectedError, decode_image, encode_png
from core.studio import Studio
from core.tools import require_tool
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
        self._models: OrderedDict[str, FewShotClassifier] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: str, loader: Any) -> FewShotClassifier:
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
class Prediction:
    path: str
    verdict: Verdict
    scores: dict[str, float]
    model_version: int
    ms: float
    inspection_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "decision": self.verdict.decision, "label": self.verdict.label,
                "score": round(self.verdict.score, 6), "scores": {k: round(v, 6) for k, v in self.scores.items()},
                "model_version": self.model_version, "ms": round(self.ms, 2),
                "inspection_id": self.inspection_id}


def classify(model: ActiveModel, rgb: np.ndarray) -> tuple[Verdict, dict[str, float]]:
    """Verdict and class probabilities of one RGB image."""
    probabilities = model.model.predict_proba([rgb])[0]
    scores = {name: float(p) for name, p in zip(model.model.classes_, probabilities, strict=True)}
    return decide(scores, model.good_class, model.threshold, model.review_band), scores


def record_inspection(studio: Studio, model: ActiveModel, verdict: Verdict, scores: dict[str, float],
                      ms: float, image: bytes | None, station: str = "default",
                      created_at: Any = None) -> int:
    """Store one inspection; the image is kept for fail and review decisions."""
    key = None
    if image is not None and verdict.decision != "pass":
        key, _ = studio.images.put(image, "png")
    fields: dict[str, Any] = dict(
        tool_id=model.tool_id, station=station, model_version_id=model.version_id,
        decision=verdict.decision, label=verdict.label, score=verdict.score, scores=scores,
        latency_ms=ms, image_key=key, needs_review=verdict.decision == "review",
    )
    if created_at is not None:
        fields["created_at"] = created_at
    with studio.transaction() as session:
        return repo.add_inspection(session, **fields).id


def predict_image(studio: Studio, tool_name: str, name: str, data: bytes, record: bool = True,
                  station: str = "default") -> Prediction:
    """Inspect one image given as file bytes; raises ImageRejectedError for unusable files."""
    model = active_model(studio, tool_name)
    started = time.perf_counter()
    rgb = decode_image(data).rgb
    verdict, scores = classify(model, rgb)
    ms = (time.perf_counter() - started) * 1000
    inspection_id = None
    if record:
        inspection_id = record_inspection(studio, model, verdict, scores, ms, encode_png(rgb), station)
    return Prediction(name, verdict, scores, model.version_id, ms, inspection_id)


def predict_files(studio: Studio, tool_name: str, files: list[tuple[str, bytes | None]], record: bool = True,
                  station: str = "default") -> list[dict[str, Any]]:
    """One result dict per file (``{"path", "error"}`` for a file that cannot be inspected)."""
    active_model(studio, tool_name)  # fail once, clearly, when the tool has no usable model
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
