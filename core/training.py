"""Training a tool's model as a job: progress by stage, cancellable, one at a time per tool."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.audit import Actor, log
from core.auth.guard import require
from core.auth.roles import Permission
from core.errors import InvalidInputError, TrainingCancelledError
from core.images import ImageRejectedError, decode_image
from core.locks import training_lock
from core.model_artifacts import publish_artifact
from core.operating_point.training_scores import KEY as CALIBRATION_KEY
from core.operating_point.training_scores import calibration_scores, judge_scores
from core.studio import Studio
from core.tool_settings import RobustnessOptions, ToolSettings
from core.tools import require_tool
from models.base import InspectionMethod, TrainingSetError
from models.profiles import PROFILES, default_profile
from models.registration import PartLocator
from models.registry import DEFAULT_METHOD, build, get_method, method_names
from storage import repository as repo
from storage import versions as versions_repo
from storage.tables import Tool

TrainProgress = Callable[[str, float], None]


@dataclass(frozen=True)
class TrainResult:
    version_id: int
    method: str
    profile: str
    seconds: float
    n_samples: int
    validation: dict[str, Any]
    skipped: list[tuple[str, str]]
    notices: list[str] = field(default_factory=list)  # what the user should know (e.g. ignored labels)

    def as_dict(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "method": self.method, "profile": self.profile,
                "seconds": round(self.seconds, 3), "n_samples": self.n_samples,
                "validation": self.validation,
                "skipped": [{"sample": name, "reason": reason} for name, reason in self.skipped],
                "notices": self.notices}


@dataclass(frozen=True)
class TrainingSet:
    """A tool's decodable samples (oldest first) and the ones skipped, with the reason."""

    tool_id: int
    good_class: str
    sample_ids: list[int]
    images: list[np.ndarray]
    labels: list[str]
    skipped: list[tuple[str, str]]


def _load_training_images(studio: Studio, tool_name: str, method: type[InspectionMethod]) -> TrainingSet:
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
    try:
        method.check_training_set(counts, good_class)
    except TrainingSetError as error:
        raise InvalidInputError(str(error)) from None
    return TrainingSet(tool_id, good_class, sample_ids, images, labels, skipped)


def _tiling(studio: Studio, tool_name: str, images: list, profile: str) -> tuple[tuple[int, int] | None, bool]:
    """Tile px and overlap from the tool's ``tiling`` setting for its training images' size (None: off),
    and whether the tiles follow the part's grid lines (mode ``cells``)."""
    with studio.transaction() as session:
        options = ToolSettings.from_json(require_tool(session, tool_name).settings).tiling
    if options.mode == "off" or not images:
        return None, False
    height, width = images[0].shape[:2]
    return options.grid(height, width, PROFILES[profile].input_size), options.mode == "cells"


def tool_profile(studio: Studio, tool_name: str) -> str:
    """The profile the tool's models train with unless one is chosen (``models.profiles.default_profile``:
    quicker per tile when the tool tiles)."""
    with studio.transaction() as session:
        return default_profile(ToolSettings.from_json(require_tool(session, tool_name).settings).tiling.mode != "off")


def tiling_cost(studio: Studio, tool_name: str, method: str = DEFAULT_METHOD,
                profile: str | None = None) -> dict[str, Any] | None:
    """What a tiled model of ``method`` would cost, before training, on the size of the training image the
    grid is cut on (the oldest): the tiling mode, tile px, overlap, tiles, MB and ms to score one part (estimates
    from the measured per-tile figures, ``models.tiling_plan.PER_TILE``); None when tiling is off or there
    is no training image yet. ``profile`` None: the tool's (``tool_profile``)."""
    profile = profile or tool_profile(studio, tool_name)
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        options = ToolSettings.from_json(tool.settings).tiling
        keys = [s.image_key for s in repo.list_samples(session, tool.id) if s.split == "train"]  # newest first
    if options.mode == "off" or not keys:
        return None
    try:
        height, width = decode_image(studio.images.read(keys[-1])).rgb.shape[:2]
    except (ImageRejectedError, OSError):
        return None
    grid = options.grid(height, width, PROFILES[profile].input_size)
    cost = options.cost(height, width, PROFILES[profile].input_size, method)
    if grid is None or cost is None:
        return None
    return {"mode": options.mode, "roi": [width, height], "tile_px": grid[0], "overlap": grid[1], **cost.as_dict()}


def _robustness(studio: Studio, tool_name: str) -> RobustnessOptions:
    """The tool's ``robustness`` settings: augmented copies, position correction."""
    with studio.transaction() as session:
        return ToolSettings.from_json(require_tool(session, tool_name).settings).robustness


def _save_part_reference(data: TrainingSet, folder: Path) -> str:
    """Keep the goods' mean image in the version's ``folder`` (position correction); the notice saying so."""
    goods = [image for image, label in zip(data.images, data.labels, strict=True) if label == data.good_class]
    PartLocator.from_goods(goods).save(folder)
    return f"position correction: each part is found against the mean of the {len(goods)} good images"


def train(
    studio: Studio,
    tool_name: str,
    method: str = DEFAULT_METHOD,
    profile: str | None = None,
    seed: int = 0,
    progress: TrainProgress | None = None,
    cancel: threading.Event | None = None,
    activate: bool = True,
    *,
    actor: Actor,
) -> TrainResult:
    """Train a model of ``method`` (a name in ``models.registry``) on the tool's samples (held-out ones
    excluded), store it as a version and make it active (or, with ``activate=False``, keep it as a
    candidate to compare and promote). Either way the audit log says who trained what.

    ``progress(stage, fraction)`` is called as work advances; setting ``cancel`` stops the job at
    the next step with TrainingCancelledError, leaving the active model untouched. ``profile`` None: the
    tool's (``tool_profile``).
    """
    profile = profile or tool_profile(studio, tool_name)
    require(studio, actor, Permission.TRAIN, f"tool {tool_name}")
    if method not in method_names():
        raise InvalidInputError(f"unknown model method {method!r}; choose one of {', '.join(method_names())}")
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
        data = _load_training_images(studio, tool_name, get_method(method))
        tiling, align = _tiling(studio, tool_name, data.images, profile)
        robustness = _robustness(studio, tool_name)
        model = build(method, profile=profile, good_class=data.good_class, seed=seed, tiling=tiling, align=align,
                      augment=robustness.augment)
        try:
            model.fit(data.images, data.labels, progress=report)
        except TrainingSetError as error:
            raise InvalidInputError(str(error)) from None
        metrics = model.training_report(data.sample_ids)
        notices = list(metrics.get("notices", []))
        metrics[CALIBRATION_KEY] = calibration_scores(
            model, data.labels, data.sample_ids, lambda rows: judge_scores(model, [data.images[i] for i in rows]))
        n_samples = len(data.images) if model.learns_from != "good" else data.labels.count(data.good_class)
        report("saving", 0.0)
        folder = studio.settings.models_dir / tool_name / uuid.uuid4().hex
        model.save(folder)
        if robustness.position:
            notices.append(_save_part_reference(data, folder))
        seconds = time.perf_counter() - started
        try:
            result = _record_version(studio, tool_name, method, profile, folder, seconds, n_samples, metrics,
                                     data.skipped, report, notices, activate, actor)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    if progress is not None:
        progress("done", 1.0)
    return result


def drop_calibration_override(tool: Tool, method: str) -> dict[str, float]:
    """Remove a threshold or band the user set for ``method`` on ``tool`` (a newly active version brings
    its own calibrated ones, on its own scale); returns what was removed."""
    settings = ToolSettings.from_json(tool.settings)
    dropped = {name: values[method] for name, values in (("threshold", settings.thresholds),
                                                         ("review_band", settings.review_bands)) if method in values}
    for name in dropped:
        settings = settings.with_change(f"{name}.{method}", None)
    tool.settings = settings.to_json()
    return dropped


def _record_version(studio: Studio, tool_name: str, method: str, profile: str, folder: Path,
                    seconds: float, n_samples: int, metrics: dict[str, Any],
                    skipped: list[tuple[str, str]], report: TrainProgress, notices: list[str],
                    activate: bool, actor: Actor) -> TrainResult:
    """Store the version (and make it active unless it is a candidate) with its audit entry; a newly
    active version's scores have a new scale, so a threshold or band the user had set for the previous
    one gives way to the calibrated ones."""
    report("saving", 0.5)
    manifest = publish_artifact(studio, folder)
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        version = repo.add_model_version(
            session, tool_id=tool.id, method=method, profile=profile, status="candidate", metrics=metrics,
            artifact_dir=folder.relative_to(studio.settings.models_dir).as_posix(), train_seconds=seconds,
            n_samples=n_samples, artifact_manifest=manifest,
        )
        details: dict[str, Any] = {"method": method, "profile": profile, "n_samples": n_samples}
        if activate:
            dropped = drop_calibration_override(tool, method)
            replaced = versions_repo.set_active(session, tool, version)
            details.update(replaced=None if replaced is None else replaced.id,
                           **({"dropped_override": dropped} if dropped else {}))
        log(session, actor, "train_activate" if activate else "train_candidate", f"model_version {version.id}",
            tool.id, **details)
        version_id = version.id
    return TrainResult(version_id, method, profile, seconds, n_samples, metrics["validation"], skipped, notices)
