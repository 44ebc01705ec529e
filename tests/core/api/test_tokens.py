"""API tokens: shown once, stored as a hash, scopes imply each other, revocation at once, audited, and
the token never in the database, the audit log or the list (service and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from core.api.tokens import ScopeError, TokenChecker, TokenError, create_token, list_tokens, revoke_token
from core.audit import Actor, audit_log
from core.auth.roles import Role
from core.cli import main
from core.errors import InvalidInputError, NotFoundError
from core.studio import Studio
from tests.cli_accounts import act_as

ACTOR = Actor("ana", "pc-7", Role.ADMIN)


def every_stored_text(studio: Studio) -> str:
    """Every row of the token and audit tables as text."""
    with studio.engine.connect() as connection:
        rows = [*connection.execute(text("SELECT * FROM api_token")),
                *connection.execute(text("SELECT * FROM audit_log"))]
    return "\n".join(str(tuple(row)) for row in rows)


def test_a_token_is_shown_once_and_stored_as_a_hash(any_studio: Studio) -> None:
    info, secret = create_token(any_studio, "mes", "inspect", ACTOR)

    assert secret.startswith("vis_") and len(secret) > 40
    assert secret.startswith(info.prefix) and len(info.prefix) == 12
    assert secret not in every_stored_text(any_studio)
    assert secret[len(info.prefix):] not in json.dumps([t.as_dict() for t in list_tokens(any_studio)])
    assert info.scopes == ("inspect",) and info.created_by == "ana"
    entry = audit_log(any_studio)[0]
    assert (entry.action, entry.actor, entry.device, entry.target) == ("api_token_create", "ana", "pc-7",
                                                                       f"api_token {info.id}")


def test_scopes_imply_each_other_and_revocation_counts_at_once(any_studio: Studio) -> None:
    checker = TokenChecker(any_studio)
    tokens = {scope: create_token(any_studio, scope, scope, ACTOR) for scope in ("read", "inspect", "admin")}
    allowed = {(scope, wanted) for scope, (_, secret) in tokens.items() for wanted in ("read", "inspect", "admin")
               if _allows(checker, secret, wanted)}
    assert allowed == {("read", "read"), ("inspect", "read"), ("inspect", "inspect"),
                       ("admin", "read"), ("admin", "inspect"), ("admin", "admin")}
    info, secret = tokens["inspect"]
    assert checker.check(secret, "inspect").id == info.id
    assert list_tokens(any_studio)[1].last_used_at is not None

    revoke_token(any_studio, info.id, ACTOR)
    with pytest.raises(TokenError, match="revoked"):
        checker.check(secret, "read")
    with pytest.raises(InvalidInputError, match="revoked already"):
        revoke_token(any_studio, info.id, ACTOR)
    with pytest.raises(NotFoundError):
        revoke_token(any_studio, 999, ACTOR)
    assert audit_log(any_studio)[0].action == "api_token_revoke"
    for wrong in (None, "", "vis_", secret[:-1] + ("A" if secret[-1] != "A" else "B"), "x" * 500):
        with pytest.raises(TokenError):
            checker.check(wrong, "read")


def _allows(checker: TokenChecker, secret: str, scope: str) -> bool:
    try:
        checker.check(secret, scope)
    except ScopeError:
        return False
    return True


@pytest.mark.parametrize("scopes", ["", "root", "read,write"])
def test_unknown_scopes_and_empty_names_are_refused(studio: Studio, scopes: str) -> None:
    with pytest.raises(InvalidInputError, match="scopes are one or more of read, inspect, admin"):
        create_token(studio, "mes", scopes, ACTOR)
    with pytest.raises(InvalidInputError, match="name"):
        create_token(studio, "  ", "read", ACTOR)
    assert list_tokens(studio) == []


def test_cli_create_list_revoke(studio: Studio, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STUDIO_DATA_DIR", str(studio.settings.data_dir))
    monkeypatch.setenv("DATABASE_URL", studio.settings.database_url)
    act_as(monkeypatch, studio, ["bo"])

    assert main(["api-tokens", "create", "mes-line-1", "--scopes", "inspect,read", "--who", "bo"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["scopes"] == ["read", "inspect"] and created["token"].startswith(created["prefix"])
    assert main(["api-tokens", "list"]) == 0
    listed = capsys.readouterr().out
    assert created["token"] not in listed and json.loads(listed)[0]["prefix"] == created["prefix"]
    assert main(["api-tokens", "revoke", str(created["id"]), "--who", "bo"]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_at"] is not None
    assert main(["audit"]) == 0
    audit = capsys.readouterr().out
    assert "api_token_revoke" in audit and '"who": "bo"' in audit and created["token"] not in audit
    assert created["token"][len(created["prefix"]):] not in every_stored_text(studio)
    assert main(["api-tokens", "create", "x", "--scopes", "root"]) == 1
    assert "scopes are one or more" in capsys.readouterr().err


def test_the_database_file_never_holds_a_token(studio: Studio) -> None:
    _, secret = create_token(studio, "mes", "admin", ACTOR)
    studio.engine.dispose()
    for path in Path(studio.settings.data_dir).glob("studio.db*"):
        assert secret.encode() not in path.read_bytes()
