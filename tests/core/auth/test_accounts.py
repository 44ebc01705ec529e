"""Accounts: sign-in, lockout after 5 failures for 15 minutes (injected clock), disabled accounts,
management by admins only, and no secret in the audit trail or the logs."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest

from core.audit import audit_log
from core.auth import accounts
from core.auth.roles import Role
from core.errors import AuthenticationError, InvalidInputError, PermissionDeniedError
from core.studio import Studio
from tests.actors import ADMIN, ENGINEER

PASSWORD = "correct horse 1"
T0 = datetime(2026, 12, 6, 12, 0)


@pytest.fixture
def alice(any_studio: Studio) -> accounts.Account:
    return accounts.create_user(any_studio, ADMIN, "alice", PASSWORD, Role.ENGINEER, "Alice Smith")


def secrets_absent(studio: Studio, *secrets: str) -> None:
    dumped = json.dumps([row.as_dict() for row in audit_log(studio, limit=10_000)], default=str)
    for secret in secrets:
        assert secret not in dumped
    assert "argon2" not in dumped


def test_authenticate_returns_the_account_and_audits(any_studio: Studio, alice: accounts.Account) -> None:
    account = accounts.authenticate(any_studio, "alice", PASSWORD, device="pc1")
    assert (account.username, account.role, account.full_name) == ("alice", Role.ENGINEER, "Alice Smith")
    actor = accounts.actor_for(account, device="pc1", via="page")
    assert (actor.name, actor.role, actor.via, actor.user_id) == ("alice", Role.ENGINEER, "page", account.id)
    assert audit_log(any_studio)[0].action == "login"


def test_wrong_password_and_unknown_user_are_refused_and_audited(any_studio: Studio, alice: accounts.Account,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError, match="Wrong user name or password"):
        accounts.authenticate(any_studio, "alice", "not it at all")
    with pytest.raises(AuthenticationError, match="Wrong user name or password"):
        accounts.authenticate(any_studio, "bob", "whatever123")
    failed = [r for r in audit_log(any_studio) if r.action == "login_failed"]
    assert {r.target for r in failed} == {"account alice", "account bob"}
    secrets_absent(any_studio, PASSWORD, "not it at all", "whatever123")
    assert "not it at all" not in caplog.text and PASSWORD not in caplog.text


def test_five_failures_lock_for_15_minutes_then_it_unlocks(any_studio: Studio, alice: accounts.Account) -> None:
    for attempt in range(4):
        with pytest.raises(AuthenticationError, match="Wrong"):
            accounts.authenticate(any_studio, "alice", f"wrong-{attempt}", now=T0)
    with pytest.raises(AuthenticationError, match="now locked until 12:15"):
        accounts.authenticate(any_studio, "alice", "wrong-5", now=T0)
    with pytest.raises(AuthenticationError, match="locked .* until 12:15"):  # even the right password
        accounts.authenticate(any_studio, "alice", PASSWORD, now=T0 + timedelta(minutes=14))
    assert [r.action for r in audit_log(any_studio)][:2] == ["login_refused", "locked"]
    assert accounts.authenticate(any_studio, "alice", PASSWORD, now=T0 + timedelta(minutes=15, seconds=1))
    with pytest.raises(AuthenticationError, match="Wrong user name"):  # the counter starts again
        accounts.authenticate(any_studio, "alice", "wrong-6", now=T0 + timedelta(minutes=16))


def test_disabled_accounts_cannot_sign_in_until_enabled(any_studio: Studio, alice: accounts.Account) -> None:
    assert accounts.disable(any_studio, ADMIN, "alice").disabled
    with pytest.raises(AuthenticationError, match="disabled"):
        accounts.authenticate(any_studio, "alice", PASSWORD)
    accounts.enable(any_studio, ADMIN, "alice")
    assert accounts.authenticate(any_studio, "alice", PASSWORD).username == "alice"


def test_only_admins_manage_users(any_studio: Studio, alice: accounts.Account) -> None:
    with pytest.raises(PermissionDeniedError):
        accounts.create_user(any_studio, ENGINEER, "eve", PASSWORD, Role.ADMIN)
    with pytest.raises(PermissionDeniedError):
        accounts.set_role(any_studio, ENGINEER, "alice", Role.ADMIN)
    assert audit_log(any_studio)[0].action == "denied"
    assert accounts.set_role(any_studio, ADMIN, "alice", Role.OPERATOR).role == Role.OPERATOR
    assert [a.username for a in accounts.list_users(any_studio, ADMIN)] == ["alice"]
    with pytest.raises(InvalidInputError, match="exists"):
        accounts.create_user(any_studio, ADMIN, "alice", PASSWORD, Role.VIEWER)
    with pytest.raises(InvalidInputError, match="at least 8"):
        accounts.create_user(any_studio, ADMIN, "carl", "short", Role.VIEWER)


def test_reset_and_change_password(any_studio: Studio, alice: accounts.Account) -> None:
    one_time = accounts.reset_password(any_studio, ADMIN, "alice")
    assert accounts.authenticate(any_studio, "alice", one_time).must_change_password
    changed = accounts.change_password(any_studio, "alice", one_time, "a new passphrase")
    assert not changed.must_change_password
    assert accounts.authenticate(any_studio, "alice", "a new passphrase")
    secrets_absent(any_studio, one_time, "a new passphrase", PASSWORD)


def test_operator_pin_quick_switch(any_studio: Studio) -> None:
    accounts.create_user(any_studio, ADMIN, "olga", PASSWORD, Role.OPERATOR)
    accounts.set_pin(any_studio, ADMIN, "olga", "4711")
    assert accounts.authenticate_pin(any_studio, "olga", "4711").role == Role.OPERATOR
    with pytest.raises(AuthenticationError):
        accounts.authenticate_pin(any_studio, "olga", "1234")
    secrets_absent(any_studio, "4711", PASSWORD)


def test_bootstrap_admin_only_once(any_studio: Studio) -> None:
    password = accounts.bootstrap_admin(any_studio)
    assert password and accounts.bootstrap_admin(any_studio) is None
    account = accounts.authenticate(any_studio, "admin", password)
    assert (account.role, account.must_change_password) == (Role.ADMIN, True)
    secrets_absent(any_studio, password)
