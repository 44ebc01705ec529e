"""Electronic signatures: bound to the content hash, append-only; locked, disabled or wrong password refused."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.audit import audit_log
from core.auth import accounts, signatures
from core.auth.roles import Role
from core.errors import AuthenticationError
from core.studio import Studio
from tests.actors import ADMIN

PASSWORD = "correct horse 1"


@pytest.fixture
def signer(any_studio: Studio):
    account = accounts.create_user(any_studio, ADMIN, "sam", PASSWORD, Role.ENGINEER, "Sam Signer")
    return accounts.actor_for(account, device="pc", via="page")


def test_a_signature_shows_name_time_meaning_and_is_bound_to_the_content(any_studio: Studio, signer) -> None:
    when = datetime(2026, 12, 6, 10, 30)
    signature = signatures.sign(any_studio, signer, PASSWORD, signatures.Meaning.APPROVED, "model_version", 7,
                                {"tool": "t", "version": 7}, now=when)
    assert (signature.full_name, signature.meaning, signature.signed_at) == ("Sam Signer", "approved", when)
    assert signature.content_hash == signatures.content_hash({"version": 7, "tool": "t"})
    assert signature.content_hash != signatures.content_hash({"tool": "t", "version": 8})
    assert signatures.signatures_for(any_studio, "model_version", 7) == [signature]
    assert "Sam Signer (sam), approved, 2026-12-06 10:30:00 UTC" == signature.as_text()


def test_wrong_or_missing_password_is_refused_and_audited(any_studio: Studio, signer) -> None:
    for password in ("wrong password", None):
        with pytest.raises(AuthenticationError):
            signatures.sign(any_studio, signer, password, "approved", "model_version", 1, {})
    assert [r.action for r in audit_log(any_studio)].count("sign_refused") == 2
    assert signatures.signatures_for(any_studio, "model_version", 1) == []
    assert "wrong password" not in str([r.as_dict() for r in audit_log(any_studio)])


def test_disabled_or_locked_accounts_cannot_sign(any_studio: Studio, signer) -> None:
    accounts.disable(any_studio, ADMIN, "sam")
    with pytest.raises(AuthenticationError, match="disabled"):
        signatures.sign(any_studio, signer, PASSWORD, "approved", "model_version", 1, {})
    accounts.enable(any_studio, ADMIN, "sam")
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            accounts.authenticate(any_studio, "sam", "wrong wrong")
    with pytest.raises(AuthenticationError, match="locked"):
        signatures.sign(any_studio, signer, PASSWORD, "approved", "model_version", 1, {})
    assert signatures.signatures_for(any_studio, "model_version", 1) == []
