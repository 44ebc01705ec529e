"""The one versioned JSON event published for every recorded inspection of a station, built from
the engine recorder's ``RecordedInspection`` (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine (and torch) stay out of light imports such as the CLI's outputs list
    from core.inspect.recorder import RecordedInspection

EVENT_VERSION = 1


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
