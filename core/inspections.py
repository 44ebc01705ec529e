"""One recorded inspection as JSON (``GET /v1/inspections/{id}``)."""

from __future__ import annotations

from typing import Any

from core.errors import NotFoundError
from core.studio import Studio
from storage import repository as repo


def inspection_json(studio: Studio, inspection_id: int) -> dict[str, Any]:
    """The inspection's decision, scores, each model's opinion and its review verdict, if any."""
    with studio.transaction() as session:
        row = repo.get_inspection(session, inspection_id)
        if row is None:
            raise NotFoundError(f"no inspection with id {inspection_id}")
        tool = repo.get_tool_by_id(session, row.tool_id)
        review = row.review
        return {
            "inspection_id": row.id, "tool": tool.name if tool else None, "station": row.station,
            "recipe": row.recipe, "created_at": row.created_at.isoformat(timespec="milliseconds"),
            "decision": row.decision, "label": row.label, "score": row.score, "scores": dict(row.scores),
            "model_version": row.model_version_id, "models": dict(row.opinions or {}), "degraded": bool(row.degraded),
            "latency_ms": row.latency_ms, "needs_review": bool(row.needs_review),
            "image_kept": row.image_key is not None,
            "review": None if review is None else {"verdict": review.verdict, "reviewer": review.reviewer,
                                                   "created_at": review.created_at.isoformat(timespec="seconds")},
        }
