"""The ``api_token`` table (issue 19) and its queries: REST API tokens, stored as hashes only.

Imported at the end of :mod:`storage.tables`, so the table shares its ``Base`` and Alembic sees it.
Repository functions take a ``Session`` and never commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.tables import Base, utc_now


class ApiToken(Base):
    """One API token: ``prefix`` (the token's first characters, shown to tell tokens apart) and the
    SHA-256 ``hash`` of the whole token; the token itself is never stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), default=None)  # whose rights it carries
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


def add_token(session: Session, **fields: object) -> ApiToken:
    token = ApiToken(**fields)
    session.add(token)
    session.flush()
    return token


def tokens_with_prefix(session: Session, prefix: str) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.prefix == prefix)))


def get_token(session: Session, token_id: int) -> ApiToken | None:
    return session.get(ApiToken, token_id)


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def mark_used(session: Session, token_id: int, when: datetime) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=when))
