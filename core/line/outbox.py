"""The durable outbox: the event row commits with its inspection, a worker per output delivers it.

``Outbox.in_transaction(session, recorded)`` and ``Outbox.after_commit(recorded)`` are the recorder's
hook pair (docs/ARCHITECTURE.md). A broker or receiver that is down, or a station that restarts, loses
nothing: undelivered rows stay until a sender confirms them (MQTT PUBACK, HTTP 2xx). A crash after a
send and before the row is marked sends it again with the same ``event_id``: receivers drop it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from core.line.events import build_event
from core.studio import Studio
from storage.line_tables import LineStation, OutboxDelivery, OutboxEvent, Output
from storage.tables import utc_now

if TYPE_CHECKING:
    from core.inspect.recorder import RecordedInspection

log = logging.getLogger("studio.line.outbox")
BATCH = 500
MAX_BACKOFF_S = 60.0


def ensure_station(session: Session, name: str) -> LineStation:
    """The station's row, created on first use."""
    station = session.scalar(select(LineStation).where(LineStation.name == name))
    if station is None:
        station = LineStation(name=name, seq=0, status={})
        session.add(station)
        session.flush()
    return station


def next_seq(session: Session, station: str) -> int:
    """The station's next event sequence number, taken under the row's write lock (this transaction)."""
    seq = session.scalar(
        update(LineStation)
        .where(LineStation.name == station)
        .values(seq=LineStation.seq + 1)
        .returning(LineStation.seq)
    )
    if seq is None:
        ensure_station(session, station)
        return next_seq(session, station)
    return int(seq)


def backoff_seconds(attempts: int) -> float:
    """1, 2, 4, ... seconds, at most a minute."""
    return min(MAX_BACKOFF_S, 2.0 ** max(0, attempts - 1))


class Outbox:
    """The recorder hooks of one process: adds event + delivery rows, wakes the delivery workers."""

    def __init__(self, station: str | None = None) -> None:
        self.station = station  # only this station's inspections (None: every station's)
        self.closed = False  # a stopped station's hooks stay subscribed (the recorder keeps them): inert
        self._wake: list[threading.Event] = []
        self._seqs: dict[int, int] = {}  # inspection id -> event seq, for the PLC's ResultSeq
        self._lock = threading.Lock()

    def seq_of(self, inspection_id: int) -> int | None:
        """The sequence number given to a committed inspection's event in this process (and forget it)."""
        with self._lock:
            return self._seqs.pop(inspection_id, None)

    def in_transaction(self, session: Session, recorded: RecordedInspection) -> OutboxEvent | None:
        """Add the event of ``recorded`` and one pending delivery per enabled output of its station."""
        if self.closed or (self.station is not None and recorded.station != self.station):
            return None
        seq = next_seq(session, recorded.station)
        event_id = str(uuid.uuid4())
        row = OutboxEvent(
            event_id=event_id,
            station=recorded.station,
            seq=seq,
            recipe=recorded.recipe,
            inspection_id=recorded.inspection_id,
            payload=build_event(recorded, event_id, seq),
            created_at=recorded.created_at,
        )
        session.add(row)
        session.flush()
        outputs = session.scalars(select(Output.id).where(Output.station == recorded.station, Output.enabled.is_(True)))
        session.add_all(
            OutboxDelivery(event_pk=row.id, output_id=oid, next_attempt_at=recorded.created_at) for oid in outputs
        )
        with self._lock:
            if len(self._seqs) > 10_000:  # nobody asked for these (e.g. the page's recorder): forget them
                self._seqs.clear()
            self._seqs[recorded.inspection_id] = seq
        return row

    def after_commit(self, recorded: RecordedInspection) -> None:
        """Wake every delivery worker of this process."""
        if self.station is not None and recorded.station != self.station:
            return
        for event in self._wake:
            event.set()

    def register(self, wake: threading.Event) -> None:
        self._wake.append(wake)


class Sender(Protocol):
    """Sends events to one output; ``send`` returns, per event, None when delivered or an error."""

    def ready(self) -> bool: ...
    def send(self, events: list[dict[str, Any]]) -> list[str | None]: ...


@dataclass
class Pending:
    id: int
    attempts: int
    payload: dict[str, Any]


def pending(session: Session, output_id: int, limit: int = BATCH) -> list[Pending]:
    """Deliveries of an output that are due, oldest event first."""
    now = utc_now()
    rows = session.execute(
        select(OutboxDelivery.id, OutboxDelivery.attempts, OutboxEvent.payload)
        .join(OutboxEvent, OutboxEvent.id == OutboxDelivery.event_pk)
        .where(
            OutboxDelivery.output_id == output_id,
            OutboxDelivery.delivered_at.is_(None),
            OutboxDelivery.next_attempt_at <= now,
        )
        .order_by(OutboxDelivery.event_pk)
        .limit(limit)
    )
    return [Pending(r[0], r[1], r[2]) for r in rows]


def backlog(session: Session, output_id: int) -> int:
    """How many events still wait for this output."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(OutboxDelivery)
            .where(OutboxDelivery.output_id == output_id, OutboxDelivery.delivered_at.is_(None))
        )
        or 0
    )


KEEP_DAYS = 30


def prune(session: Session, keep_days: float = KEEP_DAYS) -> int:
    """Delete events older than ``keep_days`` that every output has received (their deliveries go with
    them); an event still waiting for an output is kept, however old. Returns how many were deleted."""
    cutoff = utc_now() - timedelta(days=keep_days)
    waiting = exists().where(OutboxDelivery.event_pk == OutboxEvent.id, OutboxDelivery.delivered_at.is_(None))
    old = select(OutboxEvent.id).where(OutboxEvent.created_at < cutoff, ~waiting)
    ids = list(session.scalars(old))
    if ids:
        session.execute(delete(OutboxDelivery).where(OutboxDelivery.event_pk.in_(ids)))
        session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))
    return len(ids)


class DeliveryWorker(threading.Thread):
    """Delivers one output's pending events in batches; marks each confirmed one delivered."""

    def __init__(
        self,
        studio: Studio,
        output_id: int,
        name: str,
        sender: Sender,
        on_state: Callable[[str, str | None], None] | None = None,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(name=f"outbox-{name}", daemon=True)
        self.studio, self.output_id, self.output_name, self.sender = studio, output_id, name, sender
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.poll_s = poll_s
        self.on_state = on_state or (lambda state, error: None)
        self.delivered = 0
        self.last_error: str | None = None

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                sent = self.deliver_once()
            except Exception as error:  # database down: keep the rows, try again
                log.error("outbox %s: %s", self.output_name, error)
                self.last_error = str(error)
                sent = 0
            if sent == 0:
                self.wake.wait(self.poll_s)
                self.wake.clear()

    def deliver_once(self) -> int:
        """One batch: returns how many were confirmed."""
        if not self.sender.ready():
            return 0
        with self.studio.transaction() as session:
            batch = pending(session, self.output_id)
        if not batch:
            return 0
        results = self.sender.send([p.payload for p in batch])
        now = utc_now()
        ok = [p.id for p, error in zip(batch, results, strict=True) if error is None]
        failed = [(p, error) for p, error in zip(batch, results, strict=True) if error is not None]
        with self.studio.transaction() as session:
            if ok:
                session.execute(
                    update(OutboxDelivery)
                    .where(OutboxDelivery.id.in_(ok))
                    .values(delivered_at=now, attempts=OutboxDelivery.attempts + 1, last_error=None)
                )
            for p, error in failed:
                session.execute(
                    update(OutboxDelivery)
                    .where(OutboxDelivery.id == p.id)
                    .values(
                        attempts=p.attempts + 1,
                        last_error=str(error)[:500],
                        next_attempt_at=now + timedelta(seconds=backoff_seconds(p.attempts + 1)),
                    )
                )
        self.delivered += len(ok)
        if failed:
            self.last_error = str(failed[0][1])
            log.warning("output %s: %d event(s) not delivered: %s", self.output_name, len(failed), self.last_error)
        return len(ok)
