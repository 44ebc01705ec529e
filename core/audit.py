"""The audit log: who did what, when and from which device: verdicts, undos, trainings, promotions,
rollbacks, deletions, and every change of what a tool decides (settings, thresholds, policy, ROI,
classes, relabels, sample deletions). Rows are append-only and hash-chained (``storage/audit_chain.py``);
``core/audit_trail.py`` verifies the chain and exports it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.errors import NotFoundError
from core.studio import Studio
from storage import audit_chain
from storage import repository as repo

if TYPE_CHECKING:
    from core.auth.roles import Role


@dataclass(frozen=True)
class Actor:
    """A person at a device: ``name`` is who, ``device`` which tablet, PC or CLI host, ``role`` the
    signed-in account's role (None: not signed in), ``via`` how ("page", "cli", "api", "station",
    "system") and ``user_id`` the account's id."""

    name: str = "operator"
    device: str = ""
    role: Role | None = None
    via: str = ""
    user_id: int | None = None


SYSTEM = Actor("system", via="system")  # work no person asked for (the demo build, migrations): allowed all


@dataclass(frozen=True)
class AuditRow:
    id: int
    seq: int
    created_at: datetime
    actor: str
    device: str
    action: str
    target: str
    details: dict[str, Any]
    tool_id: int | None = None
    prev_hash: str = ""
    hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "when": self.created_at.isoformat(sep=" ", timespec="seconds"),
                "who": self.actor, "device": self.device, "action": self.action, "target": self.target,
                "details": self.details}


def log(session: Session, actor: Actor, action: str, target: str, tool_id: int | None, **details: Any) -> None:
    """Append one entry in the caller's transaction (it is stored only if the action is), chained to the
    trail when the transaction commits; secret-named details are redacted."""
    if actor.via:
        details = {"via": actor.via, **details}
    audit_chain.append(session, actor=actor.name[:100], device=actor.device[:100], action=action,
                       target=target, tool_id=tool_id, details=details)


def audit_log(studio: Studio, tool_name: str | None = None, limit: int | None = 100, *, actor: str | None = None,
              action: str | None = None, since: datetime | None = None,
              until: datetime | None = None) -> list[AuditRow]:
    """The newest entries first, of one tool or of all, filtered by who (``actor``), ``action`` and time
    (``since`` inclusive, ``until`` exclusive; naive UTC); ``limit=None`` for all."""
    with studio.transaction() as session:
        tool = repo.get_tool(session, tool_name) if tool_name else None
        if tool_name and tool is None:
            raise NotFoundError(f"no tool named {tool_name!r}")
        tool_id = None if tool is None else tool.id
        rows = audit_chain.entries(session, tool_id=tool_id, actor=actor, action=action, since=since, until=until,
                                   limit=limit)
        return [AuditRow(e.id, e.seq, e.created_at, e.actor, e.device, e.action, e.target, dict(e.details),
                         e.tool_id, e.prev_hash, e.hash) for e in rows]
