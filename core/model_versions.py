"""A tool's trained model versions: listing, candidates, comparison, promotion, rollback, deletion.

Every promotion, rollback and deletion is in the audit log.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, recall_score

from core.audit import Actor, log
from core.auth.guard import require
from core.auth.roles import Permission
from core.auth.signatures import Meaning, sign_if_required
from core.errors import InvalidInputError, NotFoundError
from core.evaluation import curves, operating_rates
from core.fleet import rollout
from core.images import ImageRejectedError, decode_image
from core.inspect.decision import ANOMALY_LABEL, Verdict
from core.inspect.models import ToolModels, load_tool_models
from core.locks import training_lock
from core.model_artifacts import fetch_artifact, publish_artifact
from core.studio import Studio
from core.tools import require_tool
from core.training import TrainResult, drop_calibration_override, train
from models.base import TrainingSetError
from models.registration import PartLocator
from models.registry import DEFAULT_METHOD, load_model
from storage import repository as repo
from storage import review_queue as queue_repo
from storage import versions as versions_repo


@dataclass(frozen=True)
class VersionInfo:
    id: int
    method: str
    profile: str
    status: str
    created_at: datetime
    train_seconds: float
    n_samples: int
    validation: dict[str, Any]

    def as_row(self) -> dict[str, Any]:
        accuracy = self.validation.get("balanced_accuracy")
        return {"version": self.id, "status": self.status, "method": self.method, "profile": self.profile,
                "trained (UTC)": self.created_at.strftime("%Y-%m-%d %H:%M"), "images": self.n_samples,
                "seconds": round(self.train_seconds, 1),
                "CV balanced accuracy": None if accuracy is None else round(accuracy, 3)}


def list_versions(studio: Studio, tool_name: str) -> list[VersionInfo]:
    """Every version of the tool, newest first."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        return [VersionInfo(v.id, v.method, v.profile, v.status, v.created_at, v.train_seconds, v.n_samples,
                            dict((v.metrics or {}).get("validation", {})))
                for v in repo.list_model_versions(session, tool.id)]


# --- life cycle: candidates, promotion, rollback, deletion, comparison (issue 8) --------------------
def _version_of(session: Any, tool: Any, version_id: int) -> Any:
    version = repo.get_model_version(session, version_id)
    if version is None or version.tool_id != tool.id:
        raise NotFoundError(f"tool {tool.name!r} has no model version {version_id}")
    return version


def promote(studio: Studio, tool_name: str, version_id: int, actor: Actor, action: str = "promote",
            signature_password: str | None = None) -> int | None:
    """Make ``version_id`` the tool's active model of its method in one step; ``predict`` uses it at once,
    with the version's calibrated threshold and band (a threshold the user had set for the replaced
    version is dropped and noted in the audit log).

    The replaced version is retired (kept until deleted). Returns the replaced version's id. A signed-in
    account signs it (``signature_password``, see :func:`core.auth.signatures.sign_if_required`).
    """
    require(studio, actor, Permission.PROMOTE, f"model_version {version_id}")
    with studio.transaction() as session:
        if _version_of(session, require_tool(session, tool_name), version_id).status == "active":
            raise InvalidInputError(f"version {version_id} is already the active model")
    sign_if_required(studio, actor, signature_password, Meaning.APPROVED, "model_version", version_id,
                     {"tool": tool_name, "version": version_id, "action": action})
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        version = _version_of(session, tool, version_id)
        if version.status == "active":
            raise InvalidInputError(f"version {version_id} is already the active model")
        replaced = versions_repo.set_active(session, tool, version)
        replaced_id = None if replaced is None else replaced.id
        # the version's own calibrated threshold and band apply, as after a training
        dropped = drop_calibration_override(tool, version.method)
        log(session, actor, action, f"model_version {version_id}", tool.id, method=version.method,
            replaced=replaced_id, **({"dropped_override": dropped} if dropped else {}))
        rollout.announce(session, tool.name)  # stations running the tool reload once this commits
        return replaced_id


def rollback(studio: Studio, tool_name: str, actor: Actor, version_id: int | None = None,
             method: str = DEFAULT_METHOD, signature_password: str | None = None) -> int:
    """Go back to an earlier version (``version_id``, or the newest retired version of ``method`` older
    than its active one). Returns the version now active."""
    require(studio, actor, Permission.PROMOTE, f"tool {tool_name}")
    if version_id is None:
        with studio.transaction() as session:
            tool = require_tool(session, tool_name)
            active = versions_repo.active_versions(session, tool.id).get(method)
            active_id = None if active is None else active.id
            earlier = [v.id for v in repo.list_model_versions(session, tool.id)
                       if v.method == method and v.status == "retired" and (active_id is None or v.id < active_id)]
        if not earlier:
            raise InvalidInputError(f"tool {tool_name!r} has no earlier version to roll back to")
        version_id = earlier[0]
    promote(studio, tool_name, version_id, actor, action="rollback", signature_password=signature_password)
    return version_id


def delete_version(studio: Studio, tool_name: str, version_id: int, actor: Actor) -> None:
    """Delete a version that is not active, and its artifact folder."""
    require(studio, actor, Permission.PROMOTE, f"model_version {version_id}")
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        version = _version_of(session, tool, version_id)
        if version.status == "active":
            raise InvalidInputError("the active model cannot be deleted: promote or roll back to another first")
        folder = studio.settings.models_dir / version.artifact_dir
        versions_repo.delete_version(session, version)
        log(session, actor, "delete", f"model_version {version_id}", tool.id, method=version.method)
    shutil.rmtree(folder, ignore_errors=True)


def train_candidate(studio: Studio, tool_name: str, actor: Actor, profile: str | None = None,
                    progress: Any = None, cancel: threading.Event | None = None,
                    method: str = DEFAULT_METHOD) -> TrainResult:
    """Retrain on every training sample into a *candidate*: the active model stays until a promotion."""
    return train(studio, tool_name, method, profile=profile, progress=progress, cancel=cancel, activate=False,
                 actor=actor)


def samples_since_active(studio: Studio, tool_name: str, method: str = DEFAULT_METHOD) -> dict[str, int]:
    """How many training samples each class gained since the active model of ``method`` was trained."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        active = versions_repo.active_versions(session, tool.id).get(method)
        gained = versions_repo.samples_added_since(session, tool.id, None if active is None else active.created_at)
        return {name: gained.get(name, 0) for name in tool.class_names}


ANOMALY_METHOD = "anomaly"  # the registry's anomaly model: the one whose memory can grow (extend)


def extend_anomaly(studio: Studio, tool_name: str, actor: Actor, progress: Any = None) -> TrainResult:
    """A *candidate* anomaly model in seconds: the active anomaly version plus the good training samples
    added since it was trained (reviewed goods among them), learned as a full retrain would (projection,
    memory, out-of-fold calibration) from the features and synthetic defects stored with the active
    version plus the new goods' features (``PatchCoreDetector.extend``), without redrawing the synthetic
    defects. Compared and promoted like any candidate; audited as ``extend_candidate``."""
    require(studio, actor, Permission.TRAIN, f"tool {tool_name}")
    report = progress or (lambda stage, fraction: None)
    with training_lock(studio, tool_name):
        started = time.perf_counter()
        with studio.transaction() as session:
            tool = require_tool(session, tool_name)
            active = versions_repo.active_versions(session, tool.id).get(ANOMALY_METHOD)
            if active is None:
                raise InvalidInputError(f"tool {tool_name!r} has no active anomaly model to extend: train one first")
            base_id, profile, base_version = active.id, active.profile, active
            rows = [(s.image_key, s.label) for s in repo.list_samples(session, tool.id)
                    if s.split == "train" and s.label == tool.good_class and s.created_at > active.created_at]
        report("loading", 0.0)
        images, _, _ = _load(studio, list(reversed(rows)))
        if not images:
            raise InvalidInputError(f"tool {tool_name!r} has no good sample added since anomaly version {base_id}: "
                                    "review or import good parts first")
        base_folder = fetch_artifact(studio, base_version)  # trained on another PC: from the object store
        base = load_model(base_folder)
        try:
            model = base.extend(images, progress=report)
        except TrainingSetError as error:
            raise InvalidInputError(f"anomaly version {base_id} cannot be extended: {error}") from None
        metrics = model.training_report()
        metrics["validation"].update(extended_from=base_id, goods_added=len(images))
        report("saving", 0.0)
        target = studio.settings.models_dir / tool_name / uuid.uuid4().hex
        model.save(target)
        locator = PartLocator.load(base_folder)  # position correction: the base's reference goes along
        if locator is not None:
            locator.save(target)
        seconds = time.perf_counter() - started
        try:
            manifest = publish_artifact(studio, target)
            with studio.transaction() as session:
                tool = require_tool(session, tool_name)
                version = repo.add_model_version(
                    session, tool_id=tool.id, method=ANOMALY_METHOD, profile=profile, status="candidate",
                    metrics=metrics, artifact_dir=target.relative_to(studio.settings.models_dir).as_posix(),
                    train_seconds=seconds, n_samples=model.n_images_, artifact_manifest=manifest)
                log(session, actor, "extend_candidate", f"model_version {version.id}", tool.id,
                    method=ANOMALY_METHOD, extended_from=base_id, goods_added=len(images), n_samples=model.n_images_)
                version_id = version.id
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    report("done", 1.0)
    return TrainResult(version_id, ANOMALY_METHOD, profile, seconds, model.n_images_, metrics["validation"], [],
                       list(metrics.get("notices", [])))


@dataclass(frozen=True)
class Evaluation:
    """One version's results on one labelled set; ``classes`` orders recall and confusion (an anomaly
    model's are the good class and ``anomaly``, every defect class counting as an anomaly). With the good
    class known: ``curves`` (ROC, precision-recall, areas; ``core.evaluation.curves``), ``rates`` (escape,
    false reject, review share at the version's thresholds and band) and the ``misclassified`` parts
    (decided automatically and wrongly: a good failed, a defective passed, or the wrong defect class)."""

    n: int
    balanced_accuracy: float | None
    recall: dict[str, float]
    confusion: list[list[int]]
    review_rate: float | None
    ms_per_image: float | None
    classes: list[str]
    curves: dict[str, Any] | None = None
    rates: dict[str, Any] | None = None
    misclassified: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "balanced_accuracy": self.balanced_accuracy, "recall": self.recall,
                "confusion": self.confusion, "review_rate": self.review_rate, "ms_per_image": self.ms_per_image,
                "classes": self.classes, "curves": self.curves, "rates": self.rates,
                "misclassified": self.misclassified}


Judge = Callable[[np.ndarray], Verdict]


def version_judge(models: ToolModels) -> Judge:
    """A version's verdict on a held-out or reviewed image (already a crop), as every path decides it."""
    # The engine (and torch) loads here, where a version is judged: listing, promoting, rolling back and
    # deleting versions are database work, and ``python -m core models list`` should not pay for a network.
    from core.inspect.engine import inspect

    return lambda rgb: inspect(models, rgb, roi="whole").verdict


def evaluate(judge: Judge, classes: list[str], images: list[np.ndarray], labels: list[str],
             good_class: str | None = None, keys: list[str] | None = None) -> Evaluation:
    """Balanced accuracy, per-class recall, confusion (rows true, columns predicted, in ``classes`` order),
    share sent to review and median milliseconds per image, deciding as live inspection does; with
    ``good_class`` also the curves, the three rates and the misclassified parts (``keys``: their images)."""
    if not images:
        return Evaluation(0, None, {}, [], None, None, classes)
    verdicts, times = [], []
    for rgb in images:
        started = time.perf_counter()
        verdicts.append(judge(rgb))
        times.append((time.perf_counter() - started) * 1000)
    predicted = [v.label for v in verdicts]
    decisions = [v.decision for v in verdicts]
    present = [c for c in classes if c in labels]
    recall = recall_score(labels, predicted, labels=present, average=None, zero_division=0)
    result = Evaluation(
        n=len(images),
        balanced_accuracy=float(np.mean(recall)) if present else None,
        recall={c: float(r) for c, r in zip(present, recall, strict=True)},
        confusion=confusion_matrix(labels, predicted, labels=classes).tolist(),
        review_rate=decisions.count("review") / len(decisions),
        ms_per_image=float(np.median(times)),
        classes=classes,
    )
    if good_class is None:
        return result
    defective = [label != good_class for label in labels]
    wrong = [{"key": None if keys is None else keys[i], "label": labels[i], "predicted": v.label,
              "decision": v.decision, "score": round(v.score, 4)}
             for i, v in enumerate(verdicts) if v.decision != "review" and v.label != labels[i]]
    return replace(result, curves=curves(defective, [v.score for v in verdicts]),
                   rates=operating_rates(defective, decisions), misclassified=wrong)


@dataclass(frozen=True)
class Comparison:
    """Versions side by side on the held-out samples and on reviewed inspections."""

    versions: dict[int, dict[str, Evaluation]]  # version id -> {"held_out": ..., "reviewed": ...}

    def as_dict(self) -> dict[str, Any]:
        return {"versions": {str(v): {k: e.as_dict() for k, e in sets.items()} for v, sets in self.versions.items()}}


MAX_REVIEWED_FOR_COMPARISON = 300


def compare_versions(studio: Studio, tool_name: str, version_ids: list[int],
                     progress: Any = None) -> Comparison:
    """Evaluate each version (classifier or anomaly model) on the tool's held-out samples and its newest
    reviewed inspections (at most ``MAX_REVIEWED_FOR_COMPARISON``; note a version trained after a review
    may have learnt it)."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        for version_id in version_ids:
            _version_of(session, tool, version_id)
        held_out = [(s.image_key, s.label) for s in versions_repo.holdout_samples(session, tool.id)]
        reviewed = [(i.image_key, r.verdict)
                    for r, i in queue_repo.reviews_with_image(session, tool.id, MAX_REVIEWED_FOR_COMPARISON)]
        classes, good = list(tool.class_names), tool.good_class
    sets = {"held_out": _load(studio, held_out), "reviewed": _load(studio, reviewed)}
    results: dict[int, dict[str, Evaluation]] = {}
    for index, version_id in enumerate(version_ids):
        models = load_tool_models(studio, tool_name, version_id)  # a threshold the user set, else calibrated
        names_classes = models.models[0].names_classes
        judged = classes if names_classes else [good, ANOMALY_LABEL]
        results[version_id] = {
            name: evaluate(version_judge(models), judged, images,
                           labels if names_classes
                           else [label if label == good else ANOMALY_LABEL for label in labels], good, keys)
            for name, (images, labels, keys) in sets.items()}
        if progress is not None:
            progress("compare", (index + 1) / len(version_ids))
    return Comparison(results)


def _load(studio: Studio, rows: list[tuple[str, str]]) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Decoded images, labels and keys of ``(image key, label)`` rows; a missing or damaged file is left out."""
    images, labels, keys = [], [], []
    for key, label in rows:
        try:
            images.append(decode_image(studio.images.read(key)).rgb)
        except (ImageRejectedError, OSError):
            continue
        labels.append(label)
        keys.append(key)
    return images, labels, keys
