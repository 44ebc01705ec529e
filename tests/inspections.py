"""Test helpers: an inspection with a chosen verdict, recorded through the studio's one recorder, and
the loaded classifier of a tool."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np

from core.images import decode_image
from core.inspect.decision import Verdict
from core.inspect.engine import Inspection, ModelVerdict
from core.inspect.models import LoadedModel, load_tool_models
from core.inspect.recorder import RecordContext
from core.studio import Studio
from core.tool_settings import ToolSettings
from core.tools import get_tool


def classifier_of(studio: Studio, tool_name: str) -> LoadedModel:
    """The tool's active classifier as it decides (version, threshold, band, loaded model)."""
    return next(m for m in load_tool_models(studio, tool_name).models if m.method == "classifier")


def record(studio: Studio, tool_name: str, verdict: Verdict, scores: dict[str, float] | None = None,
           image: bytes | np.ndarray | None = None, station: str | None = "default", created_at: datetime | None = None,
           ms: float = 20.0, version_id: int | None = None, opinions: dict[str, Verdict] | None = None,
           degraded: bool = False, audit_share: float = 0.0) -> int:
    """Record an inspection of ``tool_name`` with ``verdict`` (and, optionally, each model's) as the engine
    would have judged it; returns its id. The image (PNG bytes or RGB) is kept for non-passes."""
    tool = get_tool(studio, tool_name)
    if version_id is None:
        version_id = next(iter(tool.active_versions.values()), None)
    models = {method: ModelVerdict(method, version_id or 0, 0.5, 0.1, v) for method, v in (opinions or {}).items()}
    if not models and version_id is not None:
        models = {"classifier": ModelVerdict("classifier", version_id, 0.5, 0.1, verdict)}
    rgb = decode_image(image).rgb if isinstance(image, bytes) else image
    crop = rgb if rgb is not None else np.zeros((8, 8, 3), np.uint8)
    judged = Inspection(tool_name, tool.id, verdict, models, {}, degraded, scores or {}, (0, 0, 8, 8), crop,
                        ms=ms, settings=ToolSettings(audit_share=audit_share, keep_pass_share=0.0))
    pending = studio.recorder.prepare(judged, RecordContext(station, created_at=created_at))
    if image is None:  # nothing to keep
        pending = replace(pending, image_key=None)
    return studio.recorder.commit(pending).inspection_id
