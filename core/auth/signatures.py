"""Electronic signatures (21 CFR Part 11, sections 11.50 and 11.200).

A signature re-checks the signer's password (a locked, disabled or wrong one is refused and
audited), shows the printed name, the UTC time and the meaning, and is bound to the SHA-256 of the
signed record's canonical content. Signatures are stored append-only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from core import audit
from core.auth import guard
from core.auth.accounts import check_secret
from core.errors import AuthenticationError
from core.studio import Studio
from storage import accounts as accounts_repo
from storage import repository as repo
from storage.tables import utc_now


class Meaning(StrEnum):
    REVIEWED = "reviewed"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Signature:
    id: int
    username: str
    full_name: str
    meaning: Meaning
    signed_at: datetime  # naive UTC
    record_kind: str
    record_id: str
    content_hash: str
    corrects_id: int | None = None  # the signature this one corrects (a signed record is never edited)

    def as_text(self) -> str:
        return f"{self.full_name} ({self.username}), {self.meaning}, {self.signed_at:%Y-%m-%d %H:%M:%S} UTC"


def content_hash(content: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a record's content (sorted keys, no spaces)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _signature(row: accounts_repo.Signature) -> Signature:
    return Signature(row.id, row.username, row.full_name, Meaning(row.meaning), row.signed_at, row.record_kind,
                     row.record_id, row.content_hash, row.corrects_id)


def sign(studio: Studio, actor: audit.Actor, password: str | None, meaning: Meaning | str, record_kind: str,
         record_id: str | int, content: Mapping[str, Any], *, now: datetime | None = None,
         corrects: int | None = None) -> Signature:
    """Sign a record as ``actor``'s account; raises AuthenticationError when the password is missing or
    wrong or the account is locked or disabled (the refusal is audited). ``corrects``: the id of the
    signature this one corrects (signatures are never edited; a correction is a new one)."""
    now = now or utc_now()
    failure: AuthenticationError | None = None
    with studio.transaction() as session:  # committed also on failure: the audit row and counter stay
        row = accounts_repo.get_account(session, actor.name)
        target = f"{record_kind} {record_id}"[:100]
        if row is None or actor.user_id not in (None, row.id):
            audit.log(session, actor, "sign_refused", target, None, reason="no account")
            failure = AuthenticationError(f"{actor.name!r} has no account to sign with.")
        elif not password:
            audit.log(session, actor, "sign_refused", target, None, reason="no password")
            failure = AuthenticationError("A signature needs your password.")
        else:
            try:
                check_secret(session, row, password, pin=False, device=actor.device, via=actor.via or "page",
                             now=now)
            except AuthenticationError as error:
                audit.log(session, actor, "sign_refused", target, None, reason="authentication failed")
                failure = AuthenticationError(f"Not signed: {error}")
            else:
                stored = accounts_repo.add_signature(
                    session, account_id=row.id, username=row.username, full_name=row.full_name or row.username,
                    meaning=str(Meaning(meaning)), signed_at=now, record_kind=record_kind, record_id=str(record_id),
                    content_hash=content_hash(content), corrects_id=corrects)
                tool = repo.get_tool(session, str(content["tool"])) if content.get("tool") else None
                audit.log(session, actor, "sign", target, None if tool is None else tool.id,
                          signature=_signature(stored).as_text(), meaning=str(Meaning(meaning)),
                          signature_id=stored.id, content_hash=stored.content_hash, corrects=corrects)
                return _signature(stored)
    raise failure


def sign_if_required(studio: Studio, actor: audit.Actor, password: str | None, meaning: Meaning | str,
                     record_kind: str, record_id: str | int, content: Mapping[str, Any], *,
                     corrects: int | None = None) -> Signature | None:
    """Sign when authentication is on and a signed-in account acts (``actor.user_id`` set: pages, CLI,
    API); else None (single-user mode, the system, in-process callers without an account)."""
    if not guard.auth_enabled() or actor.via == "system" or actor.user_id is None:
        return None
    return sign(studio, actor, password, meaning, record_kind, record_id, content, corrects=corrects)


def signatures_for(studio: Studio, record_kind: str, record_id: str | int) -> list[Signature]:
    with studio.transaction() as session:
        return [_signature(row) for row in accounts_repo.signatures_for(session, record_kind, str(record_id))]
