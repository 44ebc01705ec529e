"""Inspection tools: create, list, look up; their classes and region of interest (audited)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.audit import Actor, log
from core.auth.guard import require
from core.auth.roles import Permission
from core.errors import InvalidInputError, NotFoundError
from core.roi import validate_roi
from core.studio import Studio
from storage import repository as repo
from storage import versions as versions_repo
from storage.tables import Tool

GOOD_CLASS = "good"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class ToolInfo:
    """What pages and the CLI show of a tool."""

    id: int
    name: str
    classes: list[str]
    good_class: str
    settings: dict[str, Any]  # as stored (core.tool_settings.ToolSettings reads it)
    active_versions: dict[str, int]  # method -> active version id
    roi: list[float] | None = None

    @property
    def defect_classes(self) -> list[str]:
        return [c for c in self.classes if c != self.good_class]

    @property
    def trained(self) -> bool:
        return bool(self.active_versions)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "classes": self.classes, "good_class": self.good_class,
                "settings": self.settings, "active_versions": self.active_versions, "roi": self.roi}


def _info(session: Session, tool: Tool) -> ToolInfo:
    active = {method: v.id for method, v in versions_repo.active_versions(session, tool.id).items()}
    return ToolInfo(tool.id, tool.name, list(tool.class_names), tool.good_class, dict(tool.settings or {}), active,
                    list(tool.roi) if tool.roi else None)


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


def create_tool(studio: Studio, name: str, classes: str | list[str], actor: Actor) -> ToolInfo:
    """Create a tool; ``good`` is its pass class."""
    require(studio, actor, Permission.MANAGE_TOOLS, f"tool {name}")
    name = name.strip()
    if not NAME_PATTERN.match(name):
        raise InvalidInputError(
            f"tool name {name!r} must start with a lower-case letter or digit and use only a-z, 0-9, '-', '_'"
        )
    class_names = parse_classes(classes)
    with studio.transaction() as session:
        if repo.get_tool(session, name) is not None:
            raise InvalidInputError(f"a tool named {name!r} already exists")
        tool = repo.add_tool(session, name, class_names, GOOD_CLASS)
        if actor.via != "system":
            log(session, actor, "tool_create", f"tool {name}", tool.id, classes=class_names)
        return _info(session, tool)


def list_tools(studio: Studio) -> list[ToolInfo]:
    with studio.transaction() as session:
        return [_info(session, tool) for tool in repo.list_tools(session)]


def require_tool(session: Session, name: str) -> Tool:
    """The tool row named ``name`` or a NotFoundError that lists the existing tools."""
    tool = repo.get_tool(session, name)
    if tool is None:
        known = ", ".join(t.name for t in repo.list_tools(session)) or "none yet"
        raise NotFoundError(f"no tool named {name!r} (tools: {known})")
    return tool


def get_tool(studio: Studio, name: str) -> ToolInfo:
    with studio.transaction() as session:
        return _info(session, require_tool(session, name))


def set_roi(studio: Studio, name: str, roi: list[float] | None, actor: Actor,
            frame: tuple[int, int] | None = None) -> list[float] | None:
    """Store the tool's region of interest (``[x0, y0, x1, y1]`` fractions of a ``frame`` = (width,
    height) camera frame, see core.roi and core.inspect.roi); None clears it. Audited."""
    require(studio, actor, Permission.EDIT_ROI, f"tool {name}")
    from core.tool_settings import ToolSettings  # tool settings build on this module

    clean = validate_roi(roi)
    with studio.transaction() as session:
        tool = require_tool(session, name)
        before = list(tool.roi) if tool.roi else None
        tool.roi = clean
        details: dict[str, Any] = {"from": before, "to": clean}
        if frame is not None:
            settings = ToolSettings.from_json(tool.settings).with_change("roi_frame", frame)
            tool.settings = settings.to_json()
            details["frame"] = list(settings.roi_frame)
        log(session, actor, "roi", f"tool {tool.name}", tool.id, **details)
    return clean


def add_class(studio: Studio, name: str, class_name: str, actor: Actor) -> list[str]:
    """Add one class to the tool (a no-op when it has it; audited when it changes); returns the classes."""
    require(studio, actor, Permission.EDIT_DATASET, f"tool {name}")
    tool = get_tool(studio, name)
    if class_name.strip().lower() in tool.classes:
        return tool.classes
    return set_classes(studio, name, [*tool.classes, class_name], actor).classes


def set_classes(studio: Studio, name: str, classes: str | list[str], actor: Actor) -> ToolInfo:
    """Replace the tool's classes (``good`` stays); a class that still labels samples cannot be removed.
    Audited. Trained models keep the classes they learned until the next training."""
    require(studio, actor, Permission.EDIT_DATASET, f"tool {name}")
    new = parse_classes(classes)
    with studio.transaction() as session:
        tool = require_tool(session, name)
        counts = repo.class_counts(session, tool.id)
        in_use = sorted(c for c in tool.class_names if c not in new and counts.get(c, 0) > 0)
        if in_use:
            raise InvalidInputError(f"class(es) {', '.join(in_use)} still label samples: relabel or delete them first")
        before = list(tool.class_names)
        tool.class_names = new
        log(session, actor, "classes", f"tool {tool.name}", tool.id, **{"from": before, "to": new})
        return _info(session, tool)


def get_roi(studio: Studio, name: str) -> list[float] | None:
    with studio.transaction() as session:
        roi = require_tool(session, name).roi
        return list(roi) if roi else None
