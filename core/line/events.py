"""The one versioned JSON event published for every recorded inspection of a station.

``RecordedInspection`` mirrors the engine recorder's record (docs/ARCHITECTURE.md): the outbox hooks
take exactly that shape, so wiring them to ``core.inspect``'s recorder is one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EVENT_VERSION = 1


@dataclass(frozen=True)
class RecordedInspection:
    """What the recorder hands its hooks once an inspection row exists (naive UTC ``created_at``)."""

    inspection_id: int
    tool: str
    tool_id: int
    station: str
    recipe: str | None
    created_at: datetime
    decision: str
    label: str
    score: float
    opinions: dict[str, Any] = field(default_factory=dict)
    model_versions: dict[str, int] = field(default_factory=dict)
    degraded: bool = False
    image_key: str | None = None


def utc_iso(moment: datetime) -> str:
    """``2026-12-06T02:10:00.123456Z`` for a naive UTC datetime."""
    return moment.isoformat(timespec="microseconds") + "Z"


def build_event(recorded: RecordedInspection, event_id: str, seq: int) -> dict[str, Any]:
    """The event of one recorded inspection (``version`` changes only when a field changes meaning)."""
    return {
        "version": EVENT_VERSION,
        "event_id": event_id,
        "seq": seq,
        "station": recorded.station,
        "recipe": recorded.recipe,
        "tool": recorded.tool,
        "inspection_id": recorded.inspection_id,
        "decision": recorded.decision,
        "label": recorded.label,
        "score": round(float(recorded.score), 6),
        "opinions": recorded.opinions,
        "model_versions": recorded.model_versions,
        "degraded": bool(recorded.degraded),
        "time": utc_iso(recorded.created_at),
    }


def encode(event: dict[str, Any]) -> bytes:
    """Canonical bytes of an event (sorted keys, no spaces): what is sent and what is signed."""
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()


def topic_name(text: str) -> str:
    """A station or tool name made safe for an MQTT topic level (no wildcards or separators)."""
    return "".join("_" if c in "/+#" or ord(c) < 32 else c for c in text) or "_"
