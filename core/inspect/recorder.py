"""Recording inspections: what is kept, the audit draw of passes, the row, and hooks for what follows.

:meth:`Recorder.prepare` decides what is kept (the judged crop of fails and reviews, of passes drawn for
audit and of ``keep_pass_share`` of the other passes) and stores that image (with its defect map);
it returns a :class:`PendingInspection` that serialises to one JSON line (the live writer spools them when the
database is away). :meth:`Recorder.commit` writes the row in one transaction, runs the
``in_transaction`` hooks inside it (an outbox event commits with its inspection or not at all), and
the ``after_commit`` hooks once it is committed. :meth:`Recorder.record` is both.

Images are written before their row. A row that then fails leaves an image no row references: the
image store is content-addressed and shared, so nothing here deletes it (another row may point at
the same file); ``store check --repair`` collects unreferenced files later.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.images import encode_map, encode_png
from core.studio import Studio
from storage import repository as repo
from storage.tables import utc_now

if TYPE_CHECKING:  # the engine loads PyTorch: a studio that only imports samples never needs it
    from core.inspect.engine import Inspection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordContext:
    """Where and when a part was inspected: the station (default: this studio's), the line recipe,
    the time (default: now) and the latency to store (default: the engine's)."""

    station: str | None = None
    recipe: str | None = None
    created_at: datetime | None = None
    latency_ms: float | None = None


@dataclass(frozen=True)
class PendingInspection:
    """An inspection ready to be written (its image, when kept, already stored)."""

    tool: str
    tool_id: int
    station: str
    recipe: str | None
    created_at: datetime
    decision: str
    label: str
    score: float
    scores: dict[str, float]
    opinions: dict[str, Any]
    model_versions: dict[str, int]
    model_version_id: int | None
    good_only_score: float | None
    degraded: bool
    latency_ms: float
    needs_review: bool
    image_key: str | None
    map_key: str | None = None
    record_key: str | None = None  # idempotency key (a station's spooled inspections): written at most once

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "created_at": self.created_at.isoformat()})

    @classmethod
    def from_json(cls, line: str) -> PendingInspection:
        fields = json.loads(line)
        fields["created_at"] = datetime.fromisoformat(fields["created_at"])
        return cls(**fields)


@dataclass(frozen=True)
class RecordedInspection:
    """A committed inspection, as the hooks (line outputs, fleet) receive it."""

    inspection_id: int
    tool: str
    tool_id: int
    station: str
    recipe: str | None
    created_at: datetime  # naive UTC
    decision: str
    label: str
    score: float
    opinions: dict[str, Any]
    model_versions: dict[str, int]
    degraded: bool
    image_key: str | None


InTransactionHook = Callable[[Session, RecordedInspection], None]
AfterCommitHook = Callable[[RecordedInspection], None]


@dataclass
class Recorder:
    """The studio's one way to record an inspection (see the module doc); thread-safe."""

    studio: Studio
    rng: random.Random = field(default_factory=random.Random)
    encode_image: Callable[[Any], bytes] = encode_png  # PNG of a kept crop (the line station: a faster level)
    _in_transaction: list[InTransactionHook] = field(default_factory=list)
    _after_commit: list[AfterCommitHook] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, in_transaction: InTransactionHook | None = None,
                  after_commit: AfterCommitHook | None = None) -> None:
        """Run ``in_transaction`` inside every inspection's transaction and ``after_commit`` after it."""
        with self._lock:
            if in_transaction is not None:
                self._in_transaction.append(in_transaction)
            if after_commit is not None:
                self._after_commit.append(after_commit)

    def prepare(self, inspection: Inspection, context: RecordContext = RecordContext()) -> PendingInspection:
        """Draw the audit and the kept-pass share, store the kept image and build the row's fields."""
        audit_share, keep_share = inspection.settings.audit_share, inspection.settings.keep_pass_share
        with self._lock:
            audit = inspection.decision == "pass" and audit_share > 0 and self.rng.random() < audit_share
            keep_pass = inspection.decision == "pass" and keep_share > 0 and self.rng.random() < keep_share
        key = map_key = None
        if inspection.decision != "pass" or audit or keep_pass:
            key, _ = self.studio.images.put(self.encode_image(inspection.crop), "png")
            if inspection.map is not None:
                map_key, _ = self.studio.images.put(encode_map(inspection.map), "png")
        return PendingInspection(
            tool=inspection.tool, tool_id=inspection.tool_id,
            station=context.station or self.studio.settings.station, recipe=context.recipe,
            created_at=context.created_at or utc_now(), decision=inspection.decision,
            label=inspection.verdict.label, score=inspection.verdict.score, scores=inspection.probabilities,
            opinions=inspection.opinions_json(), model_versions=inspection.version_ids,
            model_version_id=inspection.deciding_version, good_only_score=inspection.good_only_score,
            degraded=inspection.degraded,
            latency_ms=inspection.ms if context.latency_ms is None else context.latency_ms,
            needs_review=inspection.decision == "review" or audit, image_key=key, map_key=map_key)

    def commit(self, pending: PendingInspection) -> RecordedInspection:
        """Write the row and run the hooks (see the module doc); DatabaseUnavailableError when the
        database is away (nothing written, the pending inspection can be committed again)."""
        recorded = self.commit_once(pending)
        if recorded is None:
            raise ValueError(f"inspection {pending.record_key} is already written")
        return recorded

    def commit_once(self, pending: PendingInspection) -> RecordedInspection | None:
        """:meth:`commit`, or None (nothing written, no hook run) when an inspection with the same
        ``record_key`` is already in the database: a spool replayed twice writes each inspection once."""
        with self.studio.transaction() as session:
            if pending.record_key and repo.inspection_id_by_key(session, pending.record_key) is not None:
                return None
            row = repo.add_inspection(
                session, tool_id=pending.tool_id, station=pending.station, recipe=pending.recipe,
                model_version_id=pending.model_version_id, created_at=pending.created_at,
                decision=pending.decision, label=pending.label, score=pending.score, scores=pending.scores,
                anomaly_score=pending.good_only_score, opinions=pending.opinions, degraded=pending.degraded,
                latency_ms=pending.latency_ms, image_key=pending.image_key, map_key=pending.map_key,
                needs_review=pending.needs_review, record_key=pending.record_key)
            recorded = RecordedInspection(
                row.id, pending.tool, pending.tool_id, pending.station, pending.recipe, pending.created_at,
                pending.decision, pending.label, pending.score, pending.opinions, pending.model_versions,
                pending.degraded, pending.image_key)
            for hook in list(self._in_transaction):
                hook(session, recorded)
        for after in list(self._after_commit):
            try:
                after(recorded)
            except Exception:  # a listener's fault never undoes a committed inspection
                log.exception("an after-commit hook failed for inspection %s", recorded.inspection_id)
        return recorded

    def record(self, inspection: Inspection, context: RecordContext = RecordContext()) -> RecordedInspection:
        return self.commit(self.prepare(inspection, context))
