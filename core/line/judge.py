"""The station's one way to judge a frame and record it: the inspection engine and its recorder.

Each tool of the active recipe judges the frame through ``core.inspect`` (the ROI rule forced to
*crop*: a station's frames are camera frames) and is prepared by ``studio.recorder`` with the
station and recipe in its context; the station commits it (the outbox's hook pair is subscribed to
that recorder, so the event row commits in the inspection's own transaction) or spools it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from core.errors import InvalidInputError
from core.inspect.engine import inspect
from core.inspect.models import ToolModels, load_tool_models
from core.inspect.recorder import PendingInspection, RecordContext
from core.studio import Studio
from core.tool_settings import policies, policy_methods
from core.tools import require_tool
from models.registry import method_names
from storage import versions as versions_repo


@dataclass(frozen=True)
class ToolSetup:
    """One tool of a recipe, ready to judge: its loaded models with the recipe's overrides applied."""

    name: str
    tool_id: int
    classes: list[str]
    roi: tuple[float, ...] | None
    models: ToolModels


def _with_policy(studio: Studio, models: ToolModels, policy: str) -> ToolModels:
    """The tool's models deciding under another policy (loads an active model the tool's own policy left out)."""
    if policy not in policies():
        raise InvalidInputError(f"unknown policy {policy!r}; choose one of {', '.join(policies())}")
    wanted = policy_methods(policy)
    with studio.transaction() as session:
        active = versions_repo.active_versions(session, require_tool(session, models.tool).id)
        active_ids = {method: version.id for method, version in active.items()}
    loaded = {m.method: m for m in models.models}
    for method, version_id in active_ids.items():
        if method not in loaded and (wanted is None or method in wanted):
            loaded.update({m.method: m for m in load_tool_models(studio, models.tool, version_id=version_id).models})
    order = [m for m in method_names() if m in loaded]
    keep = tuple(loaded[m] for m in order if wanted is None or m in wanted) or tuple(loaded[m] for m in order)
    methods = {m.method for m in keep}
    degraded = len(keep) < 2 if wanted is None else not wanted <= methods
    errors = {k: v for k, v in models.errors.items() if wanted is None or k in wanted}
    if wanted is not None:
        errors.update({m: f"tool {models.tool!r} has no trained {m} model" for m in wanted - methods})
    return replace(
        models, models=keep, settings=replace(models.settings, policy=policy), degraded=degraded, errors=errors
    )


def load_tool(studio: Studio, entry: dict[str, Any]) -> ToolSetup:
    """A recipe entry (``{"tool", "roi"?, "threshold"?, "policy"?}``) with its models loaded (cached).

    ``threshold`` is one number for every deciding model, or ``{method: threshold}``."""
    models = load_tool_models(studio, entry["tool"])
    if entry.get("policy") and entry["policy"] != models.settings.policy:
        models = _with_policy(studio, models, str(entry["policy"]))
    threshold = entry.get("threshold")
    if threshold is not None:
        chosen = threshold if isinstance(threshold, dict) else {m.method: threshold for m in models.models}
        models = models.with_thresholds({k: float(v) for k, v in chosen.items()}, {})
    if entry.get("roi") is not None:
        models = replace(models, roi=tuple(float(v) for v in entry["roi"]))
    return ToolSetup(models.tool, models.tool_id, list(models.classes), models.roi, models)


def judge(
    studio: Studio, station: str, recipe: str | None, tools: Sequence[ToolSetup], rgb: np.ndarray
) -> list[PendingInspection]:
    """Judge the frame with every tool (each on its ROI): one inspection per tool, prepared by
    ``studio.recorder`` (kept images stored) with a fresh ``record_key``, ready to be committed (the
    recorder's hooks then write and wake the outbox) or spooled while the database is away."""
    context = RecordContext(station=station, recipe=recipe)
    return [replace(studio.recorder.prepare(inspect(tool.models, rgb, roi="crop"), context),
                    record_key=str(uuid.uuid4())) for tool in tools]


def fast_png(rgb: np.ndarray) -> bytes:
    """Lossless PNG at low compression (OpenCV, level 1): about 3 ms for a 300 x 300 crop where the
    studio's default encoder takes 12-19 ms; the station's kept crops are written before the PLC gets
    its result, so the station's recorder uses this one (``studio.recorder.encode_image``)."""
    ok, data = cv2.imencode(
        ".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    if not ok:
        raise InvalidInputError("the crop could not be encoded as PNG")
    return data.tobytes()


def class_index(tool: ToolSetup, label: str) -> int:
    """Index of ``label`` in the tool's classes (0 when unknown)."""
    return tool.classes.index(label) if label in tool.classes else 0
