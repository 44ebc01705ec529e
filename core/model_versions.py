"""A tool's trained model versions, for pages and reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.studio import Studio
from core.tools import require_tool
from storage import repository as repo


@dataclass(frozen=True)
class VersionInfo:
    id: int
    kind: str
    profile: str
    status: str
    created_at: datetime
    train_seconds: float
    n_samples: int
    validation: dict[str, Any]

    def as_row(self) -> dict[str, Any]:
        accuracy = self.validation.get("balanced_accuracy")
        return {"version": self.id, "status": self.status, "kind": self.kind, "profile": self.profile,
                "trained (UTC)": self.created_at.strftime("%Y-%m-%d %H:%M"), "images": self.n_samples,
                "seconds": round(self.train_seconds, 1),
                "CV balanced accuracy": None if accuracy is None else round(accuracy, 3)}


def list_versions(studio: Studio, tool_name: str) -> list[VersionInfo]:
    """Every version of the tool, newest first."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        return [VersionInfo(v.id, v.kind, v.profile, v.status, v.created_at, v.train_seconds, v.n_samples,
                            dict((v.metrics or {}).get("validation", {})))
                for v in repo.list_model_versions(session, tool.id)]
