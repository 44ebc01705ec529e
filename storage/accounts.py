"""The ``account`` and ``signature`` tables (issue 20) and their queries.

Imported at the end of :mod:`storage.tables`, so the tables share its ``Base`` and Alembic sees them.
Passwords and PINs are stored only as argon2id hashes. Signatures are append-only: no query here
updates or deletes one. Repository functions take a ``Session`` and never commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.tables import Base, utc_now


class Account(Base):
    """One person's (or station's) account: its role, its password hash and its lockout state."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    pin_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    disabled: Mapped[bool] = mapped_column(default=False)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Signature(Base):
    """An electronic signature: who (printed name), when (UTC), what it means, on which record,
    bound to the SHA-256 of the record's canonical content. Never updated, never deleted."""

    __tablename__ = "signature"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    username: Mapped[str] = mapped_column(String(100))
    full_name: Mapped[str] = mapped_column(String(200))
    meaning: Mapped[str] = mapped_column(String(16))
    signed_at: Mapped[datetime] = mapped_column(default=utc_now)
    record_kind: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("signature.id"), default=None)  # a correction


def get_account(session: Session, username: str) -> Account | None:
    return session.scalar(select(Account).where(Account.username == username))


def get_account_by_id(session: Session, account_id: int) -> Account | None:
    return session.get(Account, account_id)


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.username)))


def count_accounts(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Account)) or 0)


def add_account(session: Session, **fields: object) -> Account:
    account = Account(**fields)
    session.add(account)
    session.flush()
    return account


def add_signature(session: Session, **fields: object) -> Signature:
    signature = Signature(**fields)
    session.add(signature)
    session.flush()
    return signature


def latest_signatures(session: Session, record_kind: str, record_ids: list[str]) -> dict[str, Signature]:
    """The newest signature of each of ``record_ids`` that has one (a correction supersedes what it corrects)."""
    newest: dict[str, Signature] = {}
    if record_ids:
        for row in session.scalars(select(Signature).where(Signature.record_kind == record_kind,
                                                           Signature.record_id.in_(record_ids))
                                   .order_by(Signature.id)):
            newest[row.record_id] = row
    return newest


def signatures_for(session: Session, record_kind: str, record_id: str) -> list[Signature]:
    return list(session.scalars(select(Signature).where(Signature.record_kind == record_kind,
                                                        Signature.record_id == record_id)
                                .order_by(Signature.id)))
