"""The API tokens page (AppTest): a token is shown once at creation, listed by prefix, revoked (audited)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.api.tokens import TokenChecker, TokenError, list_tokens
from core.audit import audit_log
from core.config import load_settings
from core.studio import Studio, open_studio

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def page_studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    studio = open_studio(load_settings())
    yield studio
    studio.engine.dispose()


def shown(at: AppTest) -> str:
    parts = [str(e.value) for e in (*at.markdown, *at.caption, *at.success, *at.error, *at.info, *at.code)]
    return "\n".join(parts + [df.value.to_csv() for df in at.dataframe])


def test_create_shows_the_token_once_then_revoke(page_studio: Studio) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("pages/api_tokens.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "API tokens" and "No API token yet" in shown(at)

    at.text_input(key="token-name").input("mes-line-1")
    at.multiselect(key="token-scopes").set_value(["read", "inspect"])
    next(b for b in at.button if b.label == "Create token").click().run()
    assert not at.exception, [e.value for e in at.exception]
    secret = at.code[0].value
    (info,) = list_tokens(page_studio)
    assert secret.startswith(info.prefix) and info.scopes == ("read", "inspect")
    assert TokenChecker(page_studio).check(secret, "inspect").id == info.id
    assert info.prefix in shown(at)

    at.run()  # any next run: the token is gone from the page for good
    assert not at.code and secret not in shown(at)

    at.button(key="revoke").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "revoked" in shown(at)
    with pytest.raises(TokenError, match="revoked"):
        TokenChecker(page_studio).check(secret, "read")
    assert [e.action for e in audit_log(page_studio)[:2]] == ["api_token_revoke", "api_token_create"]
    assert secret not in shown(at)
