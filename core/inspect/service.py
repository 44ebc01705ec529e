"""Inspecting image files with a tool: what ``predict`` (CLI) and the Photo tab call."""

from __future__ import annotations

from dataclasses import dataclass

from core.audit import Actor
from core.auth.guard import require
from core.auth.roles import Permission
from core.images import ImageRejectedError, decode_image
from core.inspect.engine import Inspection, inspect
from core.inspect.models import ToolModels, load_tool_models
from core.inspect.recorder import RecordContext
from core.studio import Studio


@dataclass(frozen=True)
class Prediction:
    """One inspected file and, when recorded, its inspection id."""

    path: str
    inspection: Inspection
    inspection_id: int | None = None

    def as_dict(self) -> dict:
        return self.inspection.as_dict(self.path, self.inspection_id)


def predict_image(studio: Studio, tool_name: str, name: str, data: bytes, record: bool = True, roi: str = "auto",
                  context: RecordContext = RecordContext(), *, actor: Actor) -> Prediction:
    """Inspect one image given as file bytes (ImageRejectedError for unusable files); record it unless
    ``record`` is False (recording needs INSPECT)."""
    if record:
        require(studio, actor, Permission.INSPECT, f"tool {tool_name}")
    return _predict(studio, load_tool_models(studio, tool_name), name, data, record, roi, context)


def _predict(studio: Studio, models: ToolModels, name: str, data: bytes, record: bool, roi: str,
             context: RecordContext) -> Prediction:
    inspection = inspect(models, decode_image(data).rgb, roi=roi)
    inspection_id = studio.recorder.record(inspection, context).inspection_id if record else None
    return Prediction(name, inspection, inspection_id)


def predict_files(studio: Studio, tool_name: str, files: list[tuple[str, bytes | None]], record: bool = True,
                  roi: str = "auto", context: RecordContext = RecordContext(), *, actor: Actor) -> list[dict]:
    """One result dict per file (``{"path", "error"}`` for a file that cannot be inspected)."""
    if record:
        require(studio, actor, Permission.INSPECT, f"tool {tool_name}")
    models = load_tool_models(studio, tool_name)  # once: fails clearly when the tool has no usable model
    results: list[dict] = []
    for name, data in files:
        if data is None:
            results.append({"path": name, "error": "cannot read file"})
            continue
        try:
            results.append(_predict(studio, models, name, data, record, roi, context).as_dict())
        except ImageRejectedError as error:
            results.append({"path": name, "error": str(error)})
    return results
