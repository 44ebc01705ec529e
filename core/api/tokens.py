"""REST API tokens: created (shown once), listed, revoked (audited), and checked on each request.

A token is ``vis_`` + 32 random bytes (``secrets.token_urlsafe``). Only its SHA-256 is stored, with its
first characters as a display ``prefix`` that also finds the row. A fast hash is enough here, unlike for
passwords: the token carries 256 bits of randomness, so a stolen hash cannot be brute-forced whatever the
hash speed, and a slow hash (argon2) would add tens of milliseconds to every API request. The stored and
the computed hash are compared with ``hmac.compare_digest`` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from core.audit import Actor, log
from core.auth.guard import require
from core.auth.roles import Permission, Role
from core.errors import InvalidInputError, NotFoundError, StudioError
from core.studio import Studio
from storage import accounts as accounts_repo
from storage import api_tokens as repo
from storage.tables import utc_now

TOKEN_PREFIX = "vis_"
PREFIX_LENGTH = 12  # "vis_" and 8 random characters: shown in lists, never enough to use the token
SCOPES = ("read", "inspect", "admin")
IMPLIED = {"read": {"read"}, "inspect": {"read", "inspect"}, "admin": {"read", "inspect", "admin"}}
LAST_USED_EVERY_S = 60.0  # last_used_at is written at most once a minute per token (no write per request)
logger = logging.getLogger(__name__)


class TokenError(StudioError):
    """A missing, unknown or revoked token (HTTP 401)."""


class ScopeError(StudioError):
    """A valid token without the scope a request needs (HTTP 403)."""


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown of a token: never the token itself nor its hash."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    account_id: int | None = None  # the account whose role the token acts with (issue 20)

    @property
    def granted(self) -> set[str]:
        """Every scope this token holds, implied ones included (admin > inspect > read)."""
        return set().union(*(IMPLIED[s] for s in self.scopes if s in IMPLIED))

    def as_dict(self) -> dict[str, object]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(sep=" ", timespec="seconds")

        return {"id": self.id, "name": self.name, "prefix": self.prefix, "scopes": list(self.scopes),
                "created_by": self.created_by, "created_at": when(self.created_at),
                "revoked_at": when(self.revoked_at), "last_used_at": when(self.last_used_at)}


def _info(row: repo.ApiToken) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.prefix, tuple(row.scopes), row.created_by, row.created_at,
                     row.revoked_at, row.last_used_at, row.account_id)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scopes(scopes: str | list[str]) -> tuple[str, ...]:
    """``"read,inspect"`` or a list, checked against SCOPES."""
    items = [s.strip().lower() for s in (scopes.split(",") if isinstance(scopes, str) else scopes) if s.strip()]
    unknown = sorted(set(items) - set(SCOPES))
    if unknown or not items:
        raise InvalidInputError(f"scopes are one or more of {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})")
    return tuple(s for s in SCOPES if s in items)


def create_token(studio: Studio, name: str, scopes: str | list[str], actor: Actor) -> tuple[TokenInfo, str]:
    """A new token: its info and the token itself, which is shown this once and never stored. The token
    acts as ``actor``'s account (its role; see :func:`token_actor`)."""
    require(studio, actor, Permission.MANAGE_TOKENS, "api_token")
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInputError("a token needs a name of 1 to 100 characters (e.g. the MES that uses it)")
    granted = parse_scopes(scopes)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with studio.transaction() as session:
        row = repo.add_token(session, name=name, prefix=secret[:PREFIX_LENGTH], hash=_digest(secret),
                             scopes=list(granted), created_by=actor.name[:100], account_id=actor.user_id)
        log(session, actor, "api_token_create", f"api_token {row.id}", None, name=name, scopes=list(granted),
            prefix=row.prefix)
        return _info(row), secret


def list_tokens(studio: Studio) -> list[TokenInfo]:
    with studio.transaction() as session:
        return [_info(row) for row in repo.list_tokens(session)]


def revoke_token(studio: Studio, token_id: int, actor: Actor) -> TokenInfo:
    """Revoke a token at once (every later request with it gets 401); revoking twice is refused."""
    require(studio, actor, Permission.MANAGE_TOKENS, f"api_token {token_id}")
    with studio.transaction() as session:
        row = repo.get_token(session, token_id)
        if row is None:
            raise NotFoundError(f"no API token with id {token_id}")
        if row.revoked_at is not None:
            raise InvalidInputError(f"API token {token_id} ({row.name}) is revoked already")
        row.revoked_at = utc_now()
        log(session, actor, "api_token_revoke", f"api_token {row.id}", None, name=row.name, prefix=row.prefix)
        session.flush()
        return _info(row)


class TokenChecker:
    """Checks the token of each request against the database (so a revocation counts at once); writes
    ``last_used_at`` at most every LAST_USED_EVERY_S per token. Thread-safe."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self._last_written: dict[int, float] = {}
        self._lock = threading.Lock()

    def check(self, token: str | None, scope: str) -> TokenInfo:
        """The token's info when it is valid and holds ``scope``; TokenError or ScopeError otherwise."""
        if not token:
            raise TokenError("missing API token: send the header 'Authorization: Bearer <token>'")
        digest = _digest(token)
        with self.studio.transaction() as session:
            rows = repo.tokens_with_prefix(session, token[:PREFIX_LENGTH])
            row = next((r for r in rows if hmac.compare_digest(r.hash, digest)), None)
            if row is None:
                raise TokenError("invalid API token")
            if row.revoked_at is not None:
                raise TokenError("this API token has been revoked")
            info = _info(row)
        if scope not in info.granted:
            raise ScopeError(f"this API token lacks the {scope!r} scope (it has: {', '.join(info.scopes)})")
        if self._due(info.id):
            self._note_use(info.id)
        return info

    def _note_use(self, token_id: int) -> None:
        """Best effort: a busy database delays ``last_used_at``, never the request."""
        try:
            with self.studio.transaction() as session:
                repo.mark_used(session, token_id, utc_now())
        except StudioError as error:
            logger.warning("last use of API token %s not noted: %s", token_id, error)

    def _due(self, token_id: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last_written.get(token_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
                return False
            self._last_written[token_id] = now
            return True


SCOPE_ROLES = {"read": Role.VIEWER, "inspect": Role.OPERATOR, "admin": Role.ADMIN}


def token_actor(studio: Studio, info: TokenInfo, device: str = "", via: str = "api") -> Actor:
    """Who a token acts as: its creator's account and role (a disabled account's token acts as nobody);
    a token made without an account (by the system) acts with the role its highest scope implies."""
    if info.account_id is None:
        granted = [SCOPE_ROLES[s] for s in SCOPES if s in info.granted]
        return Actor(info.created_by, device, granted[-1] if granted else None, via)
    with studio.transaction() as session:
        account = accounts_repo.get_account_by_id(session, info.account_id)
        if account is None or account.disabled:
            raise TokenError("the account of this API token is disabled")
        return Actor(account.username, device, Role(account.role), via, account.id)
