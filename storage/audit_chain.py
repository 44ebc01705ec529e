"""The audit trail's hash chain: append (serialised, in the caller's transaction) and read back.

Each ``audit_log`` row holds ``prev_hash`` (the hash of the row before it; GENESIS for the first) and
``hash`` = SHA-256 of the canonical JSON of its content (:func:`digest`). Entries are staged by
:func:`append` and written when the session commits, after the caller's own writes: the chain head
row (``audit_chain_head``) is updated first, which serialises appends (PostgreSQL: a row lock held to
the commit; SQLite: the database write lock), so concurrent writers extend one linear chain. Taking
the head lock last, just before the commit, means an append never waits while holding it for a lock
the caller took earlier: no deadlock between audited transactions.

Details are redacted before they are written: a value under a key that names a secret (password,
secret, token, PIN, ...) and the password in a URL (``mqtt://user:password@host``) never reach the trail.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, event, select, update
from sqlalchemy.orm import Session

from storage.tables import AuditChainHead, AuditEntry, utc_now

GENESIS = "0" * 64  # the prev_hash of the first row
HEAD_ID = 1
REDACTED = "[redacted]"
FORMAT = 1  # part of every digest: a change of the canonical encoding is a new format, never an edit
_PENDING = "audit_chain.pending"
_SECRET_KEYS = {"password", "passwd", "passphrase", "secret", "token", "pin", "api_key", "apikey",
                "private_key", "hmac_key", "webhook_key", "authorization", "credentials"}
_SECRET_SUFFIXES = ("_password", "_secret", "_token", "_passphrase", "_pin")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+(?=@)", re.IGNORECASE)


class AuditChainError(RuntimeError):
    """The chain cannot be extended (its head row is missing: the database was tampered with)."""


def _is_secret_key(key: str) -> bool:
    key = key.lower().replace("-", "_")
    return key in _SECRET_KEYS or key.endswith(_SECRET_SUFFIXES)


def redact(value: Any) -> Any:
    """``value`` with every secret-named entry replaced by REDACTED and URL passwords masked (recursive)."""
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(str(k)) and v not in (None, "") else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, value)
    return value


def digest(*, seq: int, created_at: datetime, actor: str, device: str, action: str, target: str,
           tool_id: int | None, details: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) of a row's canonical encoding: JSON with sorted keys, no spaces, UTF-8, the time as
    ISO 8601 with microseconds (naive UTC)."""
    content = {"format": FORMAT, "seq": seq, "created_at": created_at.isoformat(timespec="microseconds"),
               "actor": actor, "device": device, "action": action, "target": target, "tool_id": tool_id,
               "details": details, "prev_hash": prev_hash}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def entry_digest(entry: AuditEntry) -> str:
    """The hash a stored row should carry, recomputed from its stored content."""
    return digest(seq=entry.seq, created_at=entry.created_at, actor=entry.actor, device=entry.device,
                  action=entry.action, target=entry.target, tool_id=entry.tool_id, details=entry.details,
                  prev_hash=entry.prev_hash)


def append(session: Session, *, actor: str, device: str, action: str, target: str, tool_id: int | None,
           details: dict[str, Any]) -> None:
    """Stage one entry; it is chained and written when ``session`` commits (and dropped on rollback)."""
    stored = json.loads(json.dumps(redact(details), allow_nan=False))  # exactly what the JSON column gives back
    session.info.setdefault(_PENDING, []).append(
        {"created_at": utc_now(), "actor": actor, "device": device, "action": action, "target": target,
         "tool_id": tool_id, "details": stored})


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    session.flush()  # the caller's writes first: the head is the last lock this transaction takes
    head = session.execute(update(AuditChainHead.__table__).where(AuditChainHead.id == HEAD_ID)
                           .values(seq=AuditChainHead.seq)  # a write: locks the head row (SQLite: the database)
                           .returning(AuditChainHead.seq, AuditChainHead.hash)).one_or_none()
    if head is None:
        raise AuditChainError("the audit chain's head row is missing (audit_chain_head): the database was "
                              "tampered with or not migrated; run `python -m core audit verify`")
    seq, prev_hash = head
    for fields in pending:
        seq += 1
        entry_hash = digest(seq=seq, prev_hash=prev_hash, **fields)
        session.add(AuditEntry(seq=seq, prev_hash=prev_hash, hash=entry_hash, **fields))
        prev_hash = entry_hash
    session.execute(update(AuditChainHead.__table__).where(AuditChainHead.id == HEAD_ID)
                    .values(seq=seq, hash=prev_hash))


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_PENDING, None)


def head(session: Session) -> AuditChainHead | None:
    """The head row (newest seq and hash), None if it is missing."""
    return session.get(AuditChainHead, HEAD_ID)


def chain(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    """Every row in chain order (seq, then id), streamed."""
    query = select(AuditEntry).order_by(AuditEntry.seq, AuditEntry.id).execution_options(yield_per=batch)
    yield from session.scalars(query)


def entries(session: Session, *, tool_id: int | None = None, actor: str | None = None, action: str | None = None,
            since: datetime | None = None, until: datetime | None = None,
            limit: int | None = 100) -> list[AuditEntry]:
    """Rows newest first, filtered (``actor`` and ``action`` exact; ``since`` inclusive, ``until`` exclusive)."""
    query: Select[tuple[AuditEntry]] = select(AuditEntry)
    if tool_id is not None:
        query = query.where(AuditEntry.tool_id == tool_id)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.created_at >= since)
    if until is not None:
        query = query.where(AuditEntry.created_at < until)
    query = query.order_by(AuditEntry.seq.desc(), AuditEntry.id.desc())
    return list(session.scalars(query if limit is None else query.limit(limit)))


def distinct_values(session: Session, column: str) -> list[str]:
    """The distinct actors or actions of the trail, sorted (for filter choices)."""
    attribute = {"actor": AuditEntry.actor, "action": AuditEntry.action}[column]
    return list(session.scalars(select(attribute).distinct().order_by(attribute)))
