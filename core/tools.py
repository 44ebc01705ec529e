"""Inspection tools: create, list and look up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.errors import InvalidInputError, NotFoundError
from core.roi import validate_roi
from core.studio import Studio
from storage import repository as repo
from storage.tables import Tool

GOOD_CLASS = "good"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_SETTINGS: dict[str, Any] = {"threshold": 0.5, "review_band": 0.1}
# Cross-check policy (which models decide) and the anomaly threshold on the normalised scale.
POLICIES = ("cross-check", "classifier only", "anomaly only")
DEFAULT_SETTINGS.update({"policy": "cross-check", "anomaly_threshold": 0.5})


@dataclass(frozen=True)
class ToolInfo:
    """What pages and the CLI show of a tool."""

    id: int
    name: str
    classes: list[str]
    good_class: str
    settings: dict[str, Any]
    active_model_id: int | None
    active_anomaly_id: int | None = None

    @property
    def defect_classes(self) -> list[str]:
        return [c for c in self.classes if c != self.good_class]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "classes": self.classes, "good_class": self.good_class,
                "settings": self.settings, "active_model_id": self.active_model_id}


def _info(tool: Tool) -> ToolInfo:
    return ToolInfo(tool.id, tool.name, list(tool.class_names), tool.good_class,
                    {**DEFAULT_SETTINGS, **(tool.settings or {})}, tool.active_model_id, tool.active_anomaly_id)


def parse_classes(text: str | list[str]) -> list[str]:
    """Class names from ``"good,crack"`` or a list: trimmed, lower-case, unique, ``good`` present."""
    items = text.split(",") if isinstance(text, str) else text
    classes: list[str] = []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        if not NAME_PATTERN.match(item):
            raise InvalidInputError(f"class name {item!r} must be letters, digits, '-' or '_'")
        if item not in classes:
            classes.append(item)
    if GOOD_CLASS not in classes:
        raise InvalidInputError(f"the classes must include {GOOD_CLASS!r} (the pass class)")
    return classes


def create_tool(studio: Studio, name: str, classes: str | list[str]) -> ToolInfo:
    """Create a tool; ``good`` is its pass class."""
    name = name.strip()
    if not NAME_PATTERN.match(name):
        raise InvalidInputError(
            f"tool name {name!r} must start with a lower-case letter or digit and use only a-z, 0-9, '-', '_'"
        )
    class_names = parse_classes(classes)
    with studio.transaction() as session:
        if repo.get_tool(session, name) is not None:
            raise InvalidInputError(f"a tool named {name!r} already exists")
        return _info(repo.add_tool(session, name, class_names, GOOD_CLASS))


def list_tools(studio: Studio) -> list[ToolInfo]:
    with studio.transaction() as session:
        return [_info(tool) for tool in repo.list_tools(session)]


def require_tool(session: Session, name: str) -> Tool:
    """The tool row named ``name`` or a NotFoundError that lists the existing tools."""
    tool = repo.get_tool(session, name)
    if tool is None:
        known = ", ".join(t.name for t in repo.list_tools(session)) or "none yet"
        raise NotFoundError(f"no tool named {name!r} (tools: {known})")
    return tool


def get_tool(studio: Studio, name: str) -> ToolInfo:
    with studio.transaction() as session:
        return _info(require_tool(session, name))


def update_settings(studio: Studio, name: str, **changes: Any) -> ToolInfo:
    """Change per-tool settings such as ``threshold`` (no retraining needed)."""
    unknown = set(changes) - set(DEFAULT_SETTINGS)
    if unknown:
        raise InvalidInputError(f"unknown tool settings: {', '.join(sorted(unknown))}")
    if changes.get("policy", POLICIES[0]) not in POLICIES:
        raise InvalidInputError(f"unknown policy {changes['policy']!r}; choose one of {', '.join(POLICIES)}")
    with studio.transaction() as session:
        tool = require_tool(session, name)
        tool.settings = {**(tool.settings or {}), **changes}
        return _info(tool)


def reset_decision_settings(studio: Studio, name: str) -> ToolInfo:
    """Forget a threshold / review band the user set: the active version's calibrated ones apply."""
    with studio.transaction() as session:
        tool = require_tool(session, name)
        tool.settings = {k: v for k, v in (tool.settings or {}).items() if k not in ("threshold", "review_band")}
        return _info(tool)


def set_roi(studio: Studio, name: str, roi: list[float] | None) -> list[float] | None:
    """Store the tool's region of interest (``[x0, y0, x1, y1]`` fractions, see core.roi); None clears it."""
    clean = validate_roi(roi)
    with studio.transaction() as session:
        require_tool(session, name).roi = clean
    return clean


def get_roi(studio: Studio, name: str) -> list[float] | None:
    with studio.transaction() as session:
        roi = require_tool(session, name).roi
        return list(roi) if roi else None
