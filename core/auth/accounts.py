"""Accounts: sign-in with lockout, PIN quick switch for operators, and their management by admins.

A failed sign-in is counted; the 5th in a row locks the account for 15 minutes. Every failure,
lockout and change is audited; no password, PIN or hash ever reaches the audit details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core import audit
from core.auth import guard
from core.auth.passwords import MIN_PASSWORD_LENGTH, hash_secret, one_time_password, verify_secret
from core.auth.roles import Permission, Role
from core.errors import AuthenticationError, InvalidInputError, NotFoundError
from core.studio import Studio
from storage import accounts as accounts_repo
from storage.tables import utc_now

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
BOOTSTRAP_USERNAME = "admin"


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    full_name: str
    role: Role
    disabled: bool
    must_change_password: bool
    locked_until: datetime | None

    @property
    def printed_name(self) -> str:
        return self.full_name or self.username


def _account(row: accounts_repo.Account) -> Account:
    return Account(row.id, row.username, row.full_name, Role(row.role), row.disabled, row.must_change_password,
                   row.locked_until)


def actor_for(account: Account, *, device: str = "", via: str = "page") -> audit.Actor:
    """The actor a signed-in account acts as."""
    return audit.Actor(account.username, device, account.role, via, account.id)


def _who(username: str, device: str, via: str) -> audit.Actor:
    return audit.Actor(username[:100], device, None, via)


def check_secret(session: Session, row: accounts_repo.Account, secret: str, *, pin: bool, device: str, via: str,
                 now: datetime) -> None:
    """Verify a password (or PIN) of an account in the caller's transaction: refused when disabled or
    locked; a wrong one is counted (locking at the 5th) and audited. Raises AuthenticationError."""
    who = _who(row.username, device, via)
    if row.disabled:
        audit.log(session, who, "login_refused", f"account {row.username}", None, reason="disabled")
        raise AuthenticationError(f"The account {row.username!r} is disabled; ask an admin.")
    if row.locked_until is not None and row.locked_until > now:
        audit.log(session, who, "login_refused", f"account {row.username}", None, reason="locked")
        raise AuthenticationError(f"The account {row.username!r} is locked after {MAX_FAILURES} failed attempts "
                                  f"until {row.locked_until:%H:%M} UTC.")
    if verify_secret(row.pin_hash if pin else row.password_hash, secret):
        row.failed_attempts, row.locked_until = 0, None
        return
    row.failed_attempts += 1
    audit.log(session, who, "login_failed", f"account {row.username}", None, attempt=row.failed_attempts,
              kind="pin" if pin else "password")
    if row.failed_attempts >= MAX_FAILURES:
        row.failed_attempts, row.locked_until = 0, now + LOCKOUT
        audit.log(session, who, "locked", f"account {row.username}", None, until=row.locked_until.isoformat())
        raise AuthenticationError(f"Wrong {'PIN' if pin else 'password'}; the account {row.username!r} is now "
                                  f"locked until {row.locked_until:%H:%M} UTC.")
    raise AuthenticationError(f"Wrong user name or {'PIN' if pin else 'password'}.")


def _authenticate(studio: Studio, username: str, secret: str, *, pin: bool, device: str, via: str,
                  now: datetime | None) -> Account:
    now = now or utc_now()
    failure: AuthenticationError | None = None
    with studio.transaction() as session:  # committed also on failure: the counter and audit rows stay
        row = accounts_repo.get_account(session, username.strip())
        if row is None:
            audit.log(session, _who(username, device, via), "login_failed", f"account {username.strip()[:80]}",
                      None, reason="unknown user")
            failure = AuthenticationError("Wrong user name or password.")
        elif pin and row.role != Role.OPERATOR:
            failure = AuthenticationError("The PIN quick switch is for operator accounts only.")
        else:
            try:
                check_secret(session, row, secret, pin=pin, device=device, via=via, now=now)
            except AuthenticationError as error:
                failure = error
            else:
                audit.log(session, _who(row.username, device, via), "login", f"account {row.username}", None,
                          kind="pin" if pin else "password")
                return _account(row)
    raise failure


def authenticate(studio: Studio, username: str, password: str, *, device: str = "", via: str = "page",
                 now: datetime | None = None) -> Account:
    """The account whose password this is; raises AuthenticationError (wrong, locked, disabled)."""
    return _authenticate(studio, username, password, pin=False, device=device, via=via, now=now)


def authenticate_pin(studio: Studio, username: str, pin: str, *, device: str = "",
                     now: datetime | None = None) -> Account:
    """An operator's quick switch on a shared tablet (operator accounts only)."""
    return _authenticate(studio, username, pin, pin=True, device=device, via="page", now=now)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")


def _row(session: Session, username: str) -> accounts_repo.Account:
    row = accounts_repo.get_account(session, username)
    if row is None:
        raise NotFoundError(f"no account named {username!r}")
    return row


def create_user(studio: Studio, actor: audit.Actor, username: str, password: str, role: Role | str,
                full_name: str = "", *, must_change_password: bool = False) -> Account:
    """A new account (admins only)."""
    guard.require(studio, actor, Permission.MANAGE_USERS, f"account {username}")
    username = username.strip()
    if not username or len(username) > 100 or any(c.isspace() for c in username):
        raise InvalidInputError("A user name is 1 to 100 characters without spaces.")
    role = Role(role)
    _check_password(password)
    with studio.transaction() as session:
        if accounts_repo.get_account(session, username) is not None:
            raise InvalidInputError(f"An account named {username!r} exists already.")
        row = accounts_repo.add_account(session, username=username, full_name=full_name.strip(), role=str(role),
                                        password_hash=hash_secret(password),
                                        must_change_password=must_change_password)
        audit.log(session, actor, "user_add", f"account {username}", None, role=str(role))
        return _account(row)


def list_users(studio: Studio, actor: audit.Actor) -> list[Account]:
    guard.require(studio, actor, Permission.MANAGE_USERS, "accounts")
    with studio.transaction() as session:
        return [_account(row) for row in accounts_repo.list_accounts(session)]


def get_user(studio: Studio, username: str) -> Account:
    with studio.transaction() as session:
        return _account(_row(session, username))


def _change(studio: Studio, actor: audit.Actor, username: str, action: str, **fields: object) -> Account:
    guard.require(studio, actor, Permission.MANAGE_USERS, f"account {username}")
    with studio.transaction() as session:
        row = _row(session, username)
        for key, value in fields.items():
            setattr(row, key, value)
        audit.log(session, actor, action, f"account {username}", None,
                  **{k: str(v) for k, v in fields.items() if k in {"role", "disabled"}})
        return _account(row)


def set_role(studio: Studio, actor: audit.Actor, username: str, role: Role | str) -> Account:
    return _change(studio, actor, username, "user_set_role", role=str(Role(role)))


def disable(studio: Studio, actor: audit.Actor, username: str) -> Account:
    if username == actor.name:
        raise InvalidInputError("You cannot disable your own account.")
    return _change(studio, actor, username, "user_disable", disabled=True)


def enable(studio: Studio, actor: audit.Actor, username: str) -> Account:
    return _change(studio, actor, username, "user_enable", disabled=False, failed_attempts=0, locked_until=None)


def reset_password(studio: Studio, actor: audit.Actor, username: str) -> str:
    """A one-time password for the account (to be changed at its next sign-in); also unlocks it."""
    password = one_time_password()
    _change(studio, actor, username, "user_reset_password", password_hash=hash_secret(password),
            must_change_password=True, failed_attempts=0, locked_until=None)
    return password


def change_password(studio: Studio, username: str, old_password: str, new_password: str, *, device: str = "",
                    via: str = "page") -> Account:
    """The account holder changes their own password (the old one is checked like a sign-in)."""
    _check_password(new_password)
    if new_password == old_password:
        raise InvalidInputError("The new password must differ from the old one.")
    account = authenticate(studio, username, old_password, device=device, via=via)
    with studio.transaction() as session:
        row = _row(session, account.username)
        row.password_hash, row.must_change_password = hash_secret(new_password), False
        audit.log(session, actor_for(account, device=device, via=via), "password_change",
                  f"account {username}", None)
        return _account(row)


def set_pin(studio: Studio, actor: audit.Actor, username: str, pin: str) -> None:
    """An operator's quick-switch PIN (4 to 8 digits); by an admin or by the operator themself."""
    if not (pin.isdigit() and 4 <= len(pin) <= 8):
        raise InvalidInputError("A PIN is 4 to 8 digits.")
    if actor.name != username or actor.user_id is None:
        guard.require(studio, actor, Permission.MANAGE_USERS, f"account {username}")
    with studio.transaction() as session:
        row = _row(session, username)
        if row.role != Role.OPERATOR:
            raise InvalidInputError("Only operator accounts have a PIN.")
        row.pin_hash = hash_secret(pin)
        audit.log(session, actor, "user_set_pin", f"account {username}", None)


def bootstrap_admin(studio: Studio) -> str | None:
    """With no account yet: create "admin" (must change its password) and return its one-time
    password; else None."""
    with studio.transaction() as session:
        if accounts_repo.count_accounts(session):
            return None
        password = one_time_password()
        accounts_repo.add_account(session, username=BOOTSTRAP_USERNAME, full_name="Administrator",
                                  role=str(Role.ADMIN), password_hash=hash_secret(password),
                                  must_change_password=True)
        audit.log(session, audit.SYSTEM, "user_add", f"account {BOOTSTRAP_USERNAME}", None, role=str(Role.ADMIN))
        return password
