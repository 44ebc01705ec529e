"""The audit trail's proof and exports: verify the hash chain, its head for an external record, CSV.

``verify`` walks every row in chain order and recomputes each hash. It says which row was edited (its
content no longer matches its hash), which positions were deleted (a gap in ``seq`` where the link
breaks), which row was inserted (the row after it links past it, or it repeats a position), and whether
the newest rows are missing (the head row is ahead of the last row). What it cannot see alone: a
rewrite that recomputes every hash from the edited row onwards and the head row with it; an
externally recorded head (``head()``, then ``verify(expect=...)``) catches that and any truncation.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TextIO

from core.audit import AuditRow, audit_log
from core.errors import InvalidInputError
from core.studio import Studio
from storage import audit_chain
from storage.tables import AuditEntry

MAX_PROBLEMS = 100
CSV_COLUMNS = ("id", "seq", "created_at", "actor", "device", "action", "target", "tool_id", "details",
               "prev_hash", "hash")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell as a formula


@dataclass(frozen=True)
class Anchor:
    """A head recorded outside the database: the row at ``seq`` had hash ``hash``."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``"SEQ:HASH"`` as printed by ``audit head``."""
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise InvalidInputError(f"a recorded head is SEQ:HASH (a number, a colon, 64 hex digits), not {text!r}")
        return cls(int(seq), digest.lower())

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


@dataclass(frozen=True)
class Problem:
    """One finding: ``kind`` is edited, deleted, inserted, broken (a link that fits no simpler story),
    head (the head row disagrees with the rows) or anchor (the recorded head disagrees)."""

    kind: str
    message: str
    row_id: int | None = None
    seq: int | None = None


@dataclass(frozen=True)
class ChainReport:
    rows: int
    head: Anchor | None  # the head row (None: missing)
    problems: list[Problem] = field(default_factory=list)
    more: int = 0  # problems found beyond MAX_PROBLEMS

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "head": None if self.head is None else asdict(self.head),
                "problems": [asdict(p) for p in self.problems], "more_problems": self.more}

    def summary(self) -> str:
        if self.ok:
            head = "empty" if self.head is None or self.head.seq == 0 else f"head seq {self.head}"
            return f"audit trail intact: {self.rows} row(s), {head}"
        count = len(self.problems) + self.more
        return f"audit trail TAMPERED: {count} problem(s) in {self.rows} row(s)"


class _Walk:
    """The chain walk: accepts rows in order, records problems, remembers the last row it accepted."""

    def __init__(self, head: Anchor | None, anchor: Anchor | None) -> None:
        self.head, self.anchor = head, anchor
        self.problems: list[Problem] = []
        self.more = 0
        self.rows = 0
        self.last_seq, self.last_hash, self.last_id = 0, audit_chain.GENESIS, None
        self.anchor_seen = anchor is not None and anchor.seq == 0  # an empty trail's head: the start itself

    def report(self, kind: str, message: str, row: AuditEntry | None = None) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.more += 1
            return
        self.problems.append(Problem(kind, message, None if row is None else row.id, None if row is None else row.seq))

    def _after(self) -> str:
        return "the start of the trail" if self.last_id is None else f"row id {self.last_id} (seq {self.last_seq})"

    def step(self, row: AuditEntry, following: AuditEntry | None) -> None:
        self.rows += 1
        if audit_chain.entry_digest(row) != row.hash:
            self.report("edited", f"row id {row.id} (seq {row.seq}, {row.action} by {row.actor!r}) was edited: "
                                  "its content no longer matches its hash", row)
        if row.prev_hash != self.last_hash:
            if self._inserted(row, following):
                self.report("inserted", f"row id {row.id} (seq {row.seq}) was inserted after {self._after()}: "
                                        "it is not part of the chain", row)
                return  # the chain goes on from the row before it
            if row.seq > self.last_seq + 1:
                missing = (f"seq {self.last_seq + 1}" if row.seq == self.last_seq + 2
                           else f"seq {self.last_seq + 1} to {row.seq - 1}")
                self.report("deleted", f"row(s) deleted: {missing} missing between {self._after()} and row id "
                                       f"{row.id} (seq {row.seq})", row)
            else:
                self.report("broken", f"row id {row.id} (seq {row.seq}) does not link to {self._after()}: that row "
                                      "was rewritten with a recomputed hash, or rows were spliced in here", row)
        elif row.seq != self.last_seq + 1:
            self.report("broken", f"row id {row.id} has position seq {row.seq} after seq {self.last_seq}: "
                                  "renumbered with recomputed hashes", row)
        if self.anchor is not None and row.seq == self.anchor.seq:
            self.anchor_seen = True
            if row.hash != self.anchor.hash:
                self.report("anchor", f"row seq {row.seq} (id {row.id}) differs from the recorded head "
                                      f"{self.anchor}: the trail was rewritten up to there", row)
        self.last_seq, self.last_hash, self.last_id = row.seq, row.hash, row.id

    def _inserted(self, row: AuditEntry, following: AuditEntry | None) -> bool:
        if row.seq <= self.last_seq:  # repeats a position the chain has already passed
            return True
        if following is not None:
            return following.prev_hash == self.last_hash  # the next row links past it
        head = self.head  # the newest row, appended behind the head's back
        return head is not None and (head.seq, head.hash) == (self.last_seq, self.last_hash)

    def finish(self, head: Anchor | None) -> None:
        if head is None:
            self.report("head", "the chain head row (audit_chain_head) is missing: it was deleted")
        elif head.seq > self.last_seq:
            missing = f"seq {self.last_seq + 1}" + ("" if head.seq == self.last_seq + 1 else f" to {head.seq}")
            self.report("deleted", f"the newest row(s) were deleted: the head is at seq {head.seq}, the last row "
                                   f"is seq {self.last_seq} ({missing} missing)")
        elif head.seq < self.last_seq:
            self.report("inserted", f"rows after the head (seq {head.seq + 1} to {self.last_seq}) were not "
                                    "appended through the chain")
        elif head.hash != self.last_hash:
            self.report("head", f"the head (seq {head.seq}) does not match the last row's hash: the head or that "
                                "row was rewritten")
        if self.anchor is not None and self.anchor.seq == 0 and self.anchor.hash != audit_chain.GENESIS:
            self.report("anchor", f"the recorded head {self.anchor} is not the start of a trail")
        if self.anchor is not None and not self.anchor_seen:
            self.report("anchor", f"the recorded head seq {self.anchor.seq} is not in the trail (it ends at seq "
                                  f"{self.last_seq}): the newest rows were deleted")


def _pairs(rows: Iterator[AuditEntry]) -> Iterator[tuple[AuditEntry, AuditEntry | None]]:
    """Each row with the one after it."""
    current = next(rows, None)
    while current is not None:
        following = next(rows, None)
        yield current, following
        current = following


def _head(row: Any) -> Anchor | None:
    return None if row is None else Anchor(row.seq, row.hash)


def verify(studio: Studio, expect: Anchor | None = None) -> ChainReport:
    """Walk the whole chain; ``expect`` is a head recorded earlier (``audit head``) that must still be in it."""
    with studio.transaction() as session:
        first_head = _head(audit_chain.head(session))
        walk = _Walk(first_head, expect)
        for row, following in _pairs(audit_chain.chain(session)):
            walk.step(row, following)
        # rows appended while walking are newer than the head read first: compare with the head as it is now
        head = first_head if first_head is None or walk.last_seq <= first_head.seq else _head(audit_chain.head(session))
        walk.finish(head)
    return ChainReport(walk.rows, head, walk.problems, walk.more)


def chain_head(studio: Studio) -> Anchor:
    """The newest position and hash (seq 0 and the genesis hash for an empty trail), to record elsewhere."""
    with studio.transaction() as session:
        head = _head(audit_chain.head(session))
    if head is None:
        raise InvalidInputError("the chain head row is missing: run `python -m core audit verify`")
    return head


def parse_when(text: str | None, *, end: bool = False) -> datetime | None:
    """``2026-12-06`` or ``2026-12-06T14:30`` (UTC) as a naive UTC datetime; a date alone with ``end`` means the
    end of that day (the next midnight), so that ``--until 2026-12-06`` includes the 6th."""
    if not text:
        return None
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime.combine(day + timedelta(days=1) if end else day, time())
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(f"a time is YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), not {text!r}") from None
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(rows: list[AuditRow], out: TextIO) -> int:
    """Rows (oldest first) as CSV with the hashes; cells a spreadsheet would run as formulas are quoted with a
    leading apostrophe. Returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(v) for v in (
            row.id, row.seq, row.created_at.isoformat(sep=" ", timespec="microseconds"), row.actor, row.device,
            row.action, row.target, "" if row.tool_id is None else row.tool_id,
            json.dumps(row.details, sort_keys=True, ensure_ascii=False), row.prev_hash, row.hash)])
    return len(rows)


def csv_text(studio: Studio, tool_name: str | None = None, **filters: Any) -> str:
    """The (filtered) trail as CSV text, oldest first; ``filters`` as for ``audit_log``."""
    out = io.StringIO()
    write_csv(list(reversed(audit_log(studio, tool_name, limit=None, **filters))), out)
    return out.getvalue()
