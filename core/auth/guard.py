"""The one check every state-changing service makes: may this actor do this?"""

from __future__ import annotations

import os

from core import audit
from core.auth.roles import Permission, Role, allows
from core.errors import PermissionDeniedError
from core.studio import Studio

LOCAL_ADMIN_ROLE = Role.ADMIN  # what every actor may do in single-user mode (STUDIO_AUTH=off)


def auth_enabled() -> bool:
    """Authentication is on unless STUDIO_AUTH is "off" (single-user mode: nothing is protected)."""
    return os.environ.get("STUDIO_AUTH", "on").strip().lower() not in {"off", "0", "false", "no"}


def effective_role(actor: audit.Actor) -> Role | None:
    """The role the actor acts with: its own, or a local admin's in single-user mode."""
    return LOCAL_ADMIN_ROLE if not auth_enabled() else actor.role


def is_allowed(actor: audit.Actor, permission: Permission) -> bool:
    return actor.via == "system" or allows(effective_role(actor), permission)


def require(studio: Studio, actor: audit.Actor, permission: Permission, target: str = "") -> None:
    """Return if ``actor`` may do ``permission``; else write a "denied" audit row (in its own
    transaction, so that it stays when the caller's work rolls back) and raise PermissionDeniedError."""
    if is_allowed(actor, permission):
        return
    with studio.transaction() as session:
        audit.log(session, actor, "denied", target[:100] or str(permission), None, permission=str(permission),
                  role=None if actor.role is None else str(actor.role))
    who = f"{actor.name} ({actor.role})" if actor.role else f"{actor.name} (not signed in)"
    raise PermissionDeniedError(f"{who} may not {str(permission).replace('_', ' ')}; ask an account with "
                                f"that right. Nothing was changed.")
