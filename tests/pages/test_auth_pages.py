"""Accounts in the app, run by AppTest on real studios: the login page (success, wrong password,
lockout, operator PIN), the forced password change, every page x every role (allowed pages render,
forbidden ones are refused by the router and the refusal audited, also when opened by URL), the Users
page's actions, single-user mode's notice, and no secret on any page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.audit import SYSTEM, audit_log
from core.auth import accounts
from core.auth.accounts import authenticate, create_user, list_users, set_pin
from core.auth.roles import PAGE_PERMISSIONS, Role, allows
from core.errors import AuthenticationError
from core.studio import Studio
from pages.identity import ACCOUNT_KEY, LAST_SEEN_KEY
from tests.pages.conftest import account
from tests.pages.test_pages import APP, empty_studio, texts  # noqa: F401 - fixture

PASSWORD = "correct horse battery"
PAGE_FILES = {"capture": "capture", "dataset": "dataset", "train": "train", "live": "live", "review": "review",
              "analytics": "analytics", "models": "models", "line": "line", "fleet": "fleet",
              "api-tokens": "api_tokens", "admin": "users"}
REFUSED = "This page is not open to your account"
pytestmark = pytest.mark.signed_in_as(None)


def app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login-username").input(username)
    at.text_input(key="login-password").input(password)
    return next(b for b in at.button if b.label == "Sign in").click().run()


def with_user(studio: Studio, role: Role = Role.ENGINEER, username: str = "maria", **kwargs: object) -> str:
    create_user(studio, SYSTEM, username, PASSWORD, role, "Maria Rossi", **kwargs)
    return username


def everything_shown(at: AppTest) -> str:
    """The text of every element of the page except the password inputs' own values."""
    shown = []
    for node in at.main, at.sidebar:
        for element in node:
            shown.append(str(getattr(element, "proto", element)))
    return "\n".join(shown)


def test_signed_out_every_url_shows_the_login_page(empty_studio: Studio) -> None:
    at = app()
    assert at.title[0].value == "Sign in"
    at.switch_page("pages/train.py").run()
    assert at.title[0].value == "Sign in"


def test_login_opens_the_page_and_names_the_account(empty_studio: Studio) -> None:
    with_user(empty_studio)
    at = sign_in(app(), "maria", PASSWORD)
    assert not at.exception
    assert at.title[0].value == "Capture"
    assert "Signed in as **Maria Rossi** (maria, engineer)" in texts(at.sidebar.caption)
    assert ("login", "maria") in [(e.action, e.actor) for e in audit_log(empty_studio)]
    next(b for b in at.sidebar.button if b.label == "Sign out").click().run()
    assert at.title[0].value == "Sign in"


def test_wrong_password_is_refused_and_the_fifth_locks_the_account(empty_studio: Studio) -> None:
    with_user(empty_studio)
    at = app()
    for _ in range(4):
        sign_in(at, "maria", "not the password")
        assert at.title[0].value == "Sign in"
        assert at.error[0].value == "Wrong user name or password."
    sign_in(at, "maria", "not the password")
    assert "locked" in at.error[0].value
    sign_in(at, "maria", PASSWORD)  # the right password, too late
    assert at.title[0].value == "Sign in" and "locked" in at.error[0].value
    assert not any(PASSWORD in str(e.details) or "not the password" in str(e.details) for e in audit_log(empty_studio))


def test_unknown_user_gets_the_same_message(empty_studio: Studio) -> None:
    at = sign_in(app(), "nobody", PASSWORD)
    assert at.error[0].value == "Wrong user name or password."


def test_operator_pin_quick_switch(empty_studio: Studio) -> None:
    with_user(empty_studio, Role.OPERATOR, "olga")
    set_pin(empty_studio, SYSTEM, "olga", "4711")
    at = app()
    at.text_input(key="pin-username").input("olga")
    at.text_input(key="pin-secret").input("4711")
    next(b for b in at.button if b.label == "Switch operator").click().run()
    assert at.title[0].value == "Capture"
    assert at.session_state[ACCOUNT_KEY].username == "olga"


def test_first_sign_in_forces_a_new_password(empty_studio: Studio) -> None:
    with_user(empty_studio, must_change_password=True)
    at = sign_in(app(), "maria", PASSWORD)
    assert at.title[0].value == "Choose a new password"
    assert not [t for t in at.title if t.value == "Capture"]  # the page waits
    at.text_input(key="pw-old").input(PASSWORD)
    at.text_input(key="pw-new").input("a brand new secret")
    at.text_input(key="pw-again").input("a brand new secret")
    next(b for b in at.button if b.label == "Change password").click().run()
    assert at.title[0].value == "Capture"
    assert authenticate(empty_studio, "maria", "a brand new secret").must_change_password is False
    with pytest.raises(AuthenticationError):
        authenticate(empty_studio, "maria", PASSWORD)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("url_path", list(PAGE_FILES))
def test_every_page_for_every_role(empty_studio: Studio, role: Role, url_path: str) -> None:
    """Allowed: the page runs. Forbidden (opened by its URL): refused before it runs, and audited."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state[ACCOUNT_KEY] = account(role)
    at.run()
    at.switch_page(f"pages/{PAGE_FILES[url_path]}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    needed = PAGE_PERMISSIONS[url_path]
    denied = [(e.action, e.target, e.actor) for e in audit_log(empty_studio) if e.action == "denied"]
    if needed is None or allows(role, needed):
        assert not any(REFUSED in e.value for e in at.error)
        assert denied == []
    else:
        assert [e.value for e in at.error if REFUSED in e.value], texts(at.error)
        assert not at.title  # nothing of the page ran
        assert denied == [("denied", f"page {url_path}", str(role))]


def test_default_page_is_the_first_the_role_may_open(empty_studio: Studio) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state[ACCOUNT_KEY] = account(Role.VIEWER)
    at.run()
    assert at.title[0].value == "Dataset"  # a viewer may not capture
    assert not at.error


def test_users_page_adds_resets_disables_and_sets_role_and_pin(empty_studio: Studio) -> None:
    with_user(empty_studio, Role.ADMIN, "root")
    at = sign_in(app(), "root", PASSWORD)
    at.switch_page("pages/users.py").run()
    assert at.title[0].value == "Users"
    at.text_input(key="user-name").input("olga")
    at.text_input(key="user-full-name").input("Olga <b>Ivanova</b>")
    at.selectbox(key="user-role").set_value(Role.OPERATOR)
    at.text_input(key="user-password").input(PASSWORD)
    next(b for b in at.button if b.label == "Add user").click().run()
    assert not at.error, texts(at.error)
    olga = {u.username: u for u in list_users(empty_studio, SYSTEM)}["olga"]
    assert (olga.role, olga.full_name, olga.must_change_password) == (Role.OPERATOR, "Olga <b>Ivanova</b>", True)

    at.run()
    at.selectbox(key="user-chosen").set_value("olga").run()
    at.text_input(key="user-pin").input("2468")
    next(b for b in at.button if b.label == "Set PIN").click().run()
    assert accounts.authenticate_pin(empty_studio, "olga", "2468").username == "olga"

    at.button(key="user-reset").click().run()
    one_time = at.code[0].value
    assert authenticate(empty_studio, "olga", one_time).must_change_password

    at.selectbox(key="user-new-role").set_value(Role.ENGINEER)
    at.button(key="user-set-role").click().run()
    at.button(key="user-disable").click().run()
    olga = {u.username: u for u in list_users(empty_studio, SYSTEM)}["olga"]
    assert (olga.role, olga.disabled) == (Role.ENGINEER, True)
    with pytest.raises(AuthenticationError, match="disabled"):
        authenticate(empty_studio, "olga", one_time)
    at.run()
    at.button(key="user-enable").click().run()
    assert not {u.username: u for u in list_users(empty_studio, SYSTEM)}["olga"].disabled
    actions = [e.action for e in audit_log(empty_studio) if e.target == "account olga"]
    assert {"user_add", "user_set_pin", "user_reset_password", "user_set_role", "user_disable"} <= set(actions)
    assert "<b>" not in str([m.proto for m in at.markdown if getattr(m.proto, "allow_html", False)])


def test_no_secret_on_any_page(empty_studio: Studio) -> None:
    """The password typed at sign-in, and the one-time password of a reset after it is shown, appear
    on no page element (only inside the password inputs' own state) and in no audit row."""
    with_user(empty_studio, Role.ADMIN, "root")
    with_user(empty_studio, Role.OPERATOR, "olga")
    at = sign_in(app(), "root", PASSWORD)
    at.switch_page("pages/users.py").run()
    at.selectbox(key="user-chosen").set_value("olga").run()
    at.button(key="user-reset").click().run()
    one_time = at.code[0].value
    for url_path in PAGE_FILES:
        at.switch_page(f"pages/{PAGE_FILES[url_path]}.py").run()
        shown = everything_shown(at).replace(f'value: "{PASSWORD}"', "")  # the sign-in input's own state
        assert PASSWORD not in shown and one_time not in shown, url_path
    assert not any(PASSWORD in str(e.details) or one_time in str(e.details) for e in audit_log(empty_studio))


def test_single_user_mode_says_nothing_is_protected(empty_studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_AUTH", "off")
    at = app()
    assert at.title[0].value == "Capture"
    assert any("Nothing is protected" in w.value for w in at.warning)
    at.switch_page("pages/users.py").run()
    assert at.title[0].value == "Users"
    assert any("Nothing is protected" in w.value for w in at.warning)


def test_idle_session_expires(empty_studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    with_user(empty_studio)
    at = sign_in(app(), "maria", PASSWORD)
    assert at.title[0].value == "Capture"
    at.session_state[LAST_SEEN_KEY] = datetime.now(UTC) - timedelta(minutes=16)
    at.run()
    assert at.title[0].value == "Sign in"
    assert any("without activity" in i.value for i in at.info)




def test_xsrf_stays_on_and_no_user_text_is_rendered_as_html() -> None:
    """XSRF protection is on, and the only raw-HTML calls of the pages render fixed strings (the live
    banner's text and colour come from a fixed table; the review page's button style is a constant)."""
    root = Path(APP).parent
    assert 'enableXsrfProtection = true' in (root / ".streamlit" / "config.toml").read_text()
    uses = [(path.name, line.strip()) for path in sorted((root / "pages").glob("*.py"))
            for line in path.read_text().splitlines() if "unsafe_allow_html=True" in line or "st.html(" in line]
    assert uses == [("live.py", "unsafe_allow_html=True,"), ("review.py", "st.html(BIG_BUTTONS)")]


def test_a_disabled_account_is_signed_out_at_its_next_click(empty_studio: Studio) -> None:
    with_user(empty_studio)
    at = sign_in(app(), "maria", PASSWORD)
    assert at.title[0].value == "Capture"
    accounts.disable(empty_studio, SYSTEM, "maria")
    at.run()
    assert at.title[0].value == "Sign in"
    assert any("disabled or removed" in w.value for w in at.warning)
