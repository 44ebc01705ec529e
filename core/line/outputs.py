"""Configuring a station's outputs (MQTT brokers, webhooks): add, list, remove, test.

Secrets (broker passwords, webhook keys) are stored for the service and never shown back in full.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core.audit import Actor
from core.auth.guard import require
from core.auth.roles import Permission
from core.errors import InvalidInputError, NotFoundError
from core.line import mqtt, webhook
from core.line.events import build_event
from core.line.outbox import Sender, backlog
from core.studio import Studio
from storage.line_tables import OUTPUT_KINDS, Output
from storage.tables import utc_now


def mask(secret: str | None) -> str | None:
    """``ab****`` : the first two characters at most, never the whole secret."""
    if not secret:
        return None
    return (secret[:2] if len(secret) >= 8 else "") + "****"


@dataclass(frozen=True)
class OutputInfo:
    id: int
    station: str
    name: str
    kind: str
    url: str
    username: str | None
    secret: str | None  # masked
    enabled: bool
    backlog: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "station": self.station,
            "name": self.name,
            "kind": self.kind,
            "url": self.url,
            "username": self.username,
            "secret": self.secret,
            "enabled": self.enabled,
            "backlog": self.backlog,
        }


def _info(row: Output, pending: int = 0) -> OutputInfo:
    return OutputInfo(
        row.id, row.station, row.name, row.kind, row.url, row.username, mask(row.secret), row.enabled, pending
    )


def add_output(
    studio: Studio, station: str, name: str, kind: str, url: str, username: str | None = None,
    secret: str | None = None, *, actor: Actor,
) -> OutputInfo:
    """Add an output; the URL is checked for its kind."""
    require(studio, actor, Permission.MANAGE_OUTPUTS, f"station {station}")
    if kind not in OUTPUT_KINDS:
        raise InvalidInputError(f"an output is one of {', '.join(OUTPUT_KINDS)}, not {kind!r}")
    if not name.strip():
        raise InvalidInputError("an output needs a name")
    mqtt.parse_url(url) if kind == "mqtt" else webhook.check_url(url)
    with studio.transaction() as session:
        if session.scalar(select(Output).where(Output.station == station, Output.name == name)):
            raise InvalidInputError(f"station {station!r} already has an output named {name!r}")
        row = Output(station=station, name=name, kind=kind, url=url, username=username or None, secret=secret or None)
        session.add(row)
        session.flush()
        return _info(row)


def list_outputs(studio: Studio, station: str | None = None) -> list[OutputInfo]:
    with studio.transaction() as session:
        query = select(Output).order_by(Output.station, Output.name)
        if station:
            query = query.where(Output.station == station)
        return [_info(row, backlog(session, row.id)) for row in session.scalars(query)]


def _require(session: Any, station: str, name: str) -> Output:
    row = session.scalar(select(Output).where(Output.station == station, Output.name == name))
    if row is None:
        raise NotFoundError(f"station {station!r} has no output named {name!r}")
    return row


def remove_output(studio: Studio, station: str, name: str, actor: Actor) -> None:
    """Remove an output and its pending deliveries."""
    require(studio, actor, Permission.MANAGE_OUTPUTS, f"station {station}")
    with studio.transaction() as session:
        session.delete(_require(session, station, name))


def output_config(studio: Studio, output_id: int) -> Output:
    """The full row (with its secret) for the service that connects to it."""
    with studio.transaction() as session:
        row = session.get(Output, output_id)
        if row is None:
            raise NotFoundError(f"no output {output_id}")
        session.expunge(row)
        return row


def make_sender(row: Output, **mqtt_callbacks: Any) -> Sender:
    if row.kind == "mqtt":
        return mqtt.MqttLink(row.url, row.station, row.username, row.secret, **mqtt_callbacks)
    return webhook.WebhookSender(row.url, row.secret)


def sample_event(station: str) -> dict[str, Any]:
    """A clearly marked test event (``"test": true``, tool ``_test``)."""
    from core.inspect.recorder import RecordedInspection

    recorded = RecordedInspection(0, "_test", 0, station, None, utc_now(), "pass", "test", 0.0, {}, {}, False, None)
    event = build_event(recorded, str(uuid.uuid4()), 0)
    event["test"] = True
    return event


def publish_test(studio: Studio, station: str, name: str, timeout: float = 5.0, *, actor: Actor
                 ) -> dict[str, Any]:
    """Send one test event now, outside the outbox; says whether it was confirmed and why not."""
    require(studio, actor, Permission.MANAGE_OUTPUTS, f"station {station}")
    with studio.transaction() as session:
        row = _require(session, station, name)
        session.expunge(row)
    sender = make_sender(row)
    event = sample_event(station)
    if isinstance(sender, mqtt.MqttLink):
        sender.start()
        try:
            if not sender.wait_connected(timeout):
                return {"ok": False, "error": sender.error or f"no connection to the broker within {timeout:g} s"}
            error = sender.send([event])[0]
        finally:
            sender.stop()
    else:
        error = sender.send([event])[0]
    return {"ok": error is None, "error": error, "event_id": event["event_id"]}
