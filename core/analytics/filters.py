"""What the analytics look at: a tool, a period of whole UTC days, and optional station, model
version and shift filters; and the shifts of a tool (a tool setting)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from sqlalchemy.orm import Session

from core.audit import Actor
from core.errors import InvalidInputError
from core.studio import Studio
from core.tool_settings import DEFAULT_SHIFTS, Shift, ToolSettings, change_settings, parse_shifts
from core.tools import require_tool
from storage.analytics_queries import InspectionScope
from storage.tables import Tool

__all__ = ["DEFAULT_SHIFTS", "AnalyticsFilter", "Shift", "parse_shifts", "save_shifts", "shifts_of", "tool_shifts"]


def shifts_of(tool: Tool) -> list[Shift]:
    """The tool's shifts (setting ``shifts``), or three 8-hour shifts from 06:00 UTC."""
    return list(ToolSettings.from_json(tool.settings).shift_list)


def tool_shifts(studio: Studio, tool_name: str) -> list[Shift]:
    with studio.transaction() as session:
        return shifts_of(require_tool(session, tool_name))


def save_shifts(studio: Studio, tool_name: str, shifts: list[Shift], actor: Actor) -> list[Shift]:
    """Store the tool's shifts (replacing the previous ones; audited)."""
    return list(change_settings(studio, tool_name, actor, {"shifts": tuple(shifts)}).shift_list)


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
