"""Training a tool's model as a job: progress by stage, cancellable, one at a time per tool."""

from __future__ import annotations

import fcntl
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidInputError, TrainingBusyError, TrainingCancelledError
from core.images import ImageRejectedError, decode_image
from core.studio import Studio
from core.tools import require_tool
from models.anomaly import PatchCoreDetector
from models.anomaly.calibration import more_goods_advised
from models.classifier import FewShotClassifier
from models.profiles import DEFAULT_PROFILE, PROFILES
from storage import repository as repo
from storage.tables import Tool

MIN_IMAGES_PER_CLASS = 5
MIN_GOOD_IMAGES = 5  # an anomaly model's smallest training set
KINDS = ("classifier", "anomaly")
CALIBRATED_SETTINGS = ("threshold", "review_band")  # tool settings that override a version's calibration

TrainProgress = Callable[[str, float], None]


@dataclass(frozen=True)
class TrainResult:
    version_id: int
    kind: str
    profile: str
    seconds: float
    n_samples: int
    validation: dict[str, Any]
    skipped: list[tuple[str, str]]
    notices: list[str] = field(default_factory=list)  # what the user should know (e.g. ignored labels)

    def as_dict(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "kind": self.kind, "profile": self.profile,
                "seconds": round(self.seconds, 3), "n_samples": self.n_samples,
                "validation": self.validation,
                "skipped": [{"sample": name, "reason": reason} for name, reason in self.skipped],
                "notices": self.notices}


@contextmanager
def training_lock(studio: Studio, tool_name: str) -> Iterator[None]:
    """An exclusive lock per tool across processes (CLI and UI): a second training is refused."""
    studio.settings.locks_dir.mkdir(parents=True, exist_ok=True)
    with open(studio.settings.locks_dir / f"train-{tool_name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrainingBusyError(f"a training is already running for tool {tool_name!r}; wait for it to end") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_class_counts(counts: dict[str, int], good_class: str) -> None:
    """Refuse a training set a classifier cannot learn from, saying what to add."""
    present = {name: n for name, n in counts.items() if n > 0}
    if len(present) < 2:
        raise InvalidInputError(
            "a classifier needs images of at least two classes (good and a defect); with good images "
            "only, train an anomaly model instead"
        )
    short = {name: MIN_IMAGES_PER_CLASS - n for name, n in present.items() if n < MIN_IMAGES_PER_CLASS}
    if short:
        details = ", ".join(f"{name}: {missing} more" for name, missing in sorted(short.items()))
        raise InvalidInputError(f"each class needs at least {MIN_IMAGES_PER_CLASS} images ({details})")
    if good_class not in present:
        raise InvalidInputError(f"the training set has no {good_class!r} images")


def check_good_count(n_good: int) -> None:
    """Refuse an anomaly training set with too few good images, saying how many to add."""
    if n_good < MIN_GOOD_IMAGES:
        raise InvalidInputError(f"an anomaly model needs at least {MIN_GOOD_IMAGES} good images "
                                f"({MIN_GOOD_IMAGES - n_good} more)")


@dataclass(frozen=True)
class TrainingSet:
    """A tool's decodable samples (oldest first) and the ones skipped, with the reason."""

    tool_id: int
    good_class: str
    sample_ids: list[int]
    images: list[np.ndarray]
    labels: list[str]
    skipped: list[tuple[str, str]]


def _load_training_images(studio: Studio, tool_name: str, kind: str = "classifier") -> TrainingSet:
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        rows = [(s.id, s.image_key, s.label) for s in repo.list_samples(session, tool.id)
                if s.split == "train"]  # held-out samples are kept for evaluation
        tool_id, good_class = tool.id, tool.good_class
    sample_ids, images, labels, skipped = [], [], [], []
    for sample_id, key, label in reversed(rows):
        try:
            images.append(decode_image(studio.images.read(key)).rgb)
            labels.append(label)
            sample_ids.append(sample_id)
        except (ImageRejectedError, OSError) as error:
            skipped.append((f"sample {sample_id}", str(error)))
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    if kind == "anomaly":
        check_good_count(counts.get(good_class, 0))
    else:
        check_class_counts(counts, good_class)
    return TrainingSet(tool_id, good_class, sample_ids, images, labels, skipped)


def build_classifier(profile: str, good_class: str, seed: int = 0) -> FewShotClassifier:
    """The product's classifier recipe for ``profile`` (the benchmark fits this same object)."""
    return FewShotClassifier(profile=profile, good_class=good_class, seed=seed)


def classifier_metrics(model: FewShotClassifier, data: TrainingSet) -> dict[str, Any]:
    """What a classifier version stores: validation with the misclassified sample ids, the
    calibrated decision and the out-of-fold defect scores of the good training images."""
    validation = dict(model.validation_)
    validation["misclassified_samples"] = [
        {"sample_id": data.sample_ids[i], "label": data.labels[i], "score": round(float(model.oof_scores_[i]), 4)}
        for i in validation["misclassified"]]
    goods = [float(s) for s, label in zip(model.oof_scores_, data.labels, strict=True) if label == data.good_class]
    counts = {label: data.labels.count(label) for label in sorted(set(data.labels))}
    return {"validation": validation, "class_counts": counts,
            "calibration": {"threshold": model.threshold_, "review_band": model.review_band_},
            "reference_scores": goods}


def train(
    studio: Studio,
    tool_name: str,
    kind: str = "classifier",
    profile: str = DEFAULT_PROFILE,
    seed: int = 0,
    progress: TrainProgress | None = None,
    cancel: threading.Event | None = None,
    activate: bool = True,
) -> TrainResult:
    """Train a model on the tool's samples (held-out ones excluded), store it as a version and make it
    active (or, with ``activate=False``, keep it as a candidate to compare and promote).

    ``progress(stage, fraction)`` is called as work advances; setting ``cancel`` stops the job at
    the next step with TrainingCancelledError, leaving the active model untouched.
    """
    if kind not in KINDS:
        raise InvalidInputError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    if profile not in PROFILES:
        raise InvalidInputError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")

    def report(stage: str, fraction: float) -> None:
        if cancel is not None and cancel.is_set():
            raise TrainingCancelledError("training cancelled; the active model is unchanged")
        if progress is not None:
            progress(stage, fraction)

    with training_lock(studio, tool_name):
        started = time.perf_counter()
        report("loading", 0.0)
        data = _load_training_images(studio, tool_name, kind)
        notices: list[str] = []
        n_samples = len(data.images)
        if kind == "anomaly":
            model, metrics, goods, notices = _fit_anomaly(data.images, data.labels, data.good_class, profile,
                                                          seed, report)
            n_samples = len(goods)
        else:
            model = build_classifier(profile, data.good_class, seed).fit(data.images, data.labels, progress=report)
            metrics = classifier_metrics(model, data)
        report("saving", 0.0)
        folder = studio.settings.models_dir / tool_name / uuid.uuid4().hex
        model.save(folder)
        seconds = time.perf_counter() - started
        try:
            result = _record_version(studio, tool_name, data.tool_id, kind, profile, folder, seconds, n_samples,
                                     metrics, data.skipped, report, notices, activate)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    if progress is not None:
        progress("done", 1.0)
    return result


def _fit_anomaly(images: list[np.ndarray], labels: list[str], good_class: str, profile: str, seed: int,
                 report: TrainProgress) -> tuple[PatchCoreDetector, dict[str, Any], list[np.ndarray], list[str]]:
    """Fit an anomaly model on the good images only; its metrics and what the user should know."""
    goods = [image for image, label in zip(images, labels, strict=True) if label == good_class]
    notices = []
    if len(goods) < len(images):
        notices.append(f"{len(images) - len(goods)} image(s) not labelled {good_class!r} were ignored: "
                       "an anomaly model learns from good images only")
    missing = more_goods_advised(len(goods))
    if missing:
        notices.append(f"{missing} more good image(s) would make the anomaly model and its threshold more reliable")
    model = PatchCoreDetector(profile=profile, seed=seed).fit(goods, progress=report)
    validation = {"n_good": len(goods), "ignored_non_good": len(images) - len(goods),
                  "more_goods_advised": missing, "threshold_raw": model.calibration_.threshold,
                  "scale_raw": model.calibration_.scale}
    return model, {"validation": validation, "reference_scores": model.reference_scores_}, goods, notices


def drop_calibration_override(tool: Tool) -> dict[str, Any]:
    """Remove a threshold or band the user set on ``tool`` (a newly active classifier brings its own
    calibrated ones); returns what was removed."""
    settings = dict(tool.settings or {})
    dropped = {k: settings.pop(k) for k in CALIBRATED_SETTINGS if k in settings}
    tool.settings = settings
    return dropped


def _record_version(studio: Studio, tool_name: str, tool_id: int, kind: str, profile: str, folder: Path,
                    seconds: float, n_samples: int, metrics: dict[str, Any],
                    skipped: list[tuple[str, str]], report: TrainProgress, notices: list[str],
                    activate: bool = True) -> TrainResult:
    """Store the version (and make it active unless it is a candidate); a newly active classifier's
    scores have a new scale, so a threshold or band the user had set for the previous one gives way
    to the calibrated ones."""
    report("saving", 0.5)
    validation = metrics["validation"]
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        if activate and kind == "classifier":
            drop_calibration_override(tool)
        version = repo.add_model_version(
            session, tool_id=tool_id, kind=kind, profile=profile, status="candidate",
            metrics=metrics,
            artifact_dir=folder.relative_to(studio.settings.models_dir).as_posix(), train_seconds=seconds,
            n_samples=n_samples,
        )
        if activate:
            repo.activate_model_version(session, tool, version)
        version_id = version.id
    return TrainResult(version_id, kind, profile, seconds, n_samples, metrics["validation"], skipped, notices)
