"""What the analytics look at: a tool, a period of whole UTC days, and optional station, model
version and shift filters; and the shifts of a tool (a tool setting)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.errors import InvalidInputError
from core.studio import Studio
from core.tools import require_tool
from storage.analytics_queries import InspectionScope
from storage.tables import Tool

SHIFTS_SETTING = "shifts"
SHIFT_PATTERN = re.compile(r"^\s*([A-Za-z][\w-]{0,30})\s+(\d{1,2})\s*-\s*(\d{1,2})\s*$")


@dataclass(frozen=True)
class Shift:
    """A named span of the (UTC) day: ``start`` inclusive to ``end`` exclusive, in hours; wraps midnight
    when ``end <= start`` (22 - 6)."""

    name: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.name} {self.start:02d}-{self.end:02d}"


DEFAULT_SHIFTS = (Shift("early", 6, 14), Shift("late", 14, 22), Shift("night", 22, 6))


def parse_shifts(text: str) -> list[Shift]:
    """Shifts from ``"early 6-14, late 14-22, night 22-6"``: unique names, hours 0-23, start != end."""
    shifts: list[Shift] = []
    for part in (p for p in text.split(",") if p.strip()):
        match = SHIFT_PATTERN.match(part)
        if not match:
            raise InvalidInputError(f"shift {part.strip()!r} must look like 'early 6-14'")
        name, start, end = match.group(1), int(match.group(2)), int(match.group(3))
        if not (0 <= start <= 23 and 0 <= end <= 24) or start == end:
            raise InvalidInputError(f"shift {name!r}: hours must be 0-23 and the start differ from the end")
        if any(s.name == name for s in shifts):
            raise InvalidInputError(f"shift {name!r} is given twice")
        shifts.append(Shift(name, start, end % 24))
    if not shifts:
        raise InvalidInputError("give at least one shift, e.g. 'day 6-18, night 18-6'")
    return shifts


def shifts_of(tool: Tool) -> list[Shift]:
    """The tool's shifts (setting ``shifts``), or three 8-hour shifts from 06:00 UTC."""
    stored = (tool.settings or {}).get(SHIFTS_SETTING)
    if not stored:
        return list(DEFAULT_SHIFTS)
    return [Shift(str(s["name"]), int(s["start"]), int(s["end"])) for s in stored]


def tool_shifts(studio: Studio, tool_name: str) -> list[Shift]:
    with studio.transaction() as session:
        return shifts_of(require_tool(session, tool_name))


def save_shifts(studio: Studio, tool_name: str, shifts: list[Shift]) -> list[Shift]:
    """Store the tool's shifts (replacing the previous ones)."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        stored: list[dict[str, Any]] = [{"name": s.name, "start": s.start, "end": s.end} for s in shifts]
        tool.settings = {**(tool.settings or {}), SHIFTS_SETTING: stored}
        return shifts_of(tool)


@dataclass(frozen=True)
class AnalyticsFilter:
    """A tool, the UTC days ``start`` to ``end`` inclusive, and optional station, model version, shift."""

    tool: str
    start: date
    end: date
    station: str | None = None
    model_version_id: int | None = None
    shift: str | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidInputError(f"the period ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> AnalyticsFilter:
        """The period of the same length just before this one, with the same other filters."""
        return replace(self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1))

    def scope(self, session: Session, tool: Tool | None = None) -> InspectionScope:
        """The storage-level scope of this filter (raises NotFoundError / InvalidInputError)."""
        tool = tool or require_tool(session, self.tool)
        hours = None
        if self.shift is not None:
            match = [s for s in shifts_of(tool) if s.name == self.shift]
            if not match:
                raise InvalidInputError(f"tool {tool.name!r} has no shift named {self.shift!r}")
            hours = (match[0].start, match[0].end)
        return InspectionScope(
            tool_id=tool.id,
            start=datetime.combine(self.start, time.min),
            end=datetime.combine(self.end + timedelta(days=1), time.min),
            station=self.station,
            model_version_id=self.model_version_id,
            hours=hours,
        )
