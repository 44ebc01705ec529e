"""The station's one way to judge a frame and record it: the seam with the inspection engine.

Today this calls ``core.inference`` (``tool_models`` / ``inspect_rgb``) and writes the inspection row
itself, so that the outbox's ``in_transaction`` hook runs inside the same transaction. Once
``core.inspect`` lands, ``inspect_and_record`` becomes engine ``inspect`` + ``Recorder.record`` with
the outbox's hook pair subscribed (``recorder.subscribe(in_transaction=..., after_commit=...)``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from sqlalchemy.orm import Session

from core.decision import CLASSIFIER
from core.errors import StudioError
from core.inference import ToolModels, inspect_rgb, tool_models
from core.line.events import RecordedInspection
from core.reviews import review_settings
from core.roi import crop_to_roi
from core.studio import Studio
from core.tools import get_roi, get_tool
from storage import repository as repo

InTransaction = Callable[[Session, RecordedInspection], Any]
AfterCommit = Callable[[RecordedInspection], Any]


@dataclass(frozen=True)
class ToolSetup:
    """One tool of a recipe, ready to judge: its loaded models and the overrides applied."""

    name: str
    tool_id: int
    classes: list[str]
    roi: list[float] | None
    models: ToolModels
    audit_share: float = 0.0  # passes drawn for the review queue (the tool's setting, read at load)


def load_tool(studio: Studio, entry: dict[str, Any]) -> ToolSetup:
    """A recipe entry (``{"tool", "roi"?, "threshold"?, "policy"?}``) with its models loaded (cached)."""
    info = get_tool(studio, entry["tool"])
    models = tool_models(studio, info.name)
    if entry.get("policy"):
        models = replace(models, policy=str(entry["policy"]))
    if entry.get("threshold") is not None and models.classifier is not None:
        models = replace(models, classifier=replace(models.classifier, threshold=float(entry["threshold"])))
    roi = entry.get("roi") if entry.get("roi") is not None else get_roi(studio, info.name)
    audit_share = float(review_settings(info.settings)["audit_share"])
    return ToolSetup(info.name, info.id, list(info.classes), roi, models, audit_share)


def inspect_and_record(studio: Studio, station: str, recipe: str | None, tools: Sequence[ToolSetup],
                       rgb: np.ndarray, in_transaction: Sequence[InTransaction] = (),
                       after_commit: Sequence[AfterCommit] = ()) -> list[RecordedInspection]:
    """Judge the frame with every tool (each on its ROI), record one inspection per tool and run the
    hooks: ``in_transaction`` inside the inspections' transaction, ``after_commit`` once committed."""
    judged = []
    for tool in tools:
        started = time.perf_counter()
        crop = np.ascontiguousarray(crop_to_roi(rgb, tool.roi))
        prediction = inspect_rgb(tool.models, tool.name, crop)
        ms = (time.perf_counter() - started) * 1000
        verdict = prediction.verdict
        audit = verdict.decision == "pass" and tool.audit_share > 0 and random.random() < tool.audit_share
        key = studio.images.put(fast_png(crop), "png")[0] if verdict.decision != "pass" or audit else None
        judged.append((tool, prediction, ms, audit, key))
    recorded: list[RecordedInspection] = []
    with studio.transaction() as session:
        for tool, prediction, ms, audit, key in judged:
            verdict = prediction.verdict
            row = repo.add_inspection(
                session, tool_id=tool.tool_id, station=station, model_version_id=prediction.model_version,
                decision=verdict.decision, label=verdict.label, score=verdict.score, scores=prediction.scores,
                latency_ms=ms, image_key=key, needs_review=verdict.decision == "review" or audit,
                anomaly_score=prediction.anomaly_score, opinions=prediction.models, degraded=prediction.degraded)
            versions = {method: int(o["version"]) for method, o in prediction.models.items() if "version" in o}
            record = RecordedInspection(row.id, tool.name, tool.tool_id, station, recipe, row.created_at,
                                        verdict.decision, verdict.label, float(verdict.score), dict(prediction.models),
                                        versions, bool(prediction.degraded), key)
            for hook in in_transaction:
                hook(session, record)
            recorded.append(record)
    for record in recorded:
        for hook in after_commit:
            hook(record)
    return recorded


def fast_png(rgb: np.ndarray) -> bytes:
    """Lossless PNG at low compression: about 1 ms for a 300 x 300 crop instead of about 12 (the
    image is written before the PLC gets its result)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise StudioError("the frame could not be encoded as PNG")
    return data.tobytes()


def class_index(tool: ToolSetup, label: str) -> int:
    """Index of ``label`` in the tool's classes (0 when unknown)."""
    return tool.classes.index(label) if label in tool.classes else 0


__all__ = ["CLASSIFIER", "ToolSetup", "class_index", "inspect_and_record", "load_tool"]
