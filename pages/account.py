"""Signing in and out: the login page (password, or an operator's PIN on a shared tablet), the forced
and voluntary password change, and the sidebar box naming who is signed in."""

from __future__ import annotations

import streamlit as st

from core.auth.accounts import Account, authenticate, authenticate_pin, change_password, get_user
from core.errors import StudioError
from pages.common import studio
from pages.identity import ACCOUNT_KEY, DEVICE_KEY, EXPIRED_KEY, device, sign_in, sign_out, signed_in

ENDED_KEY = "auth-ended"


def current_account() -> Account | None:
    """The signed-in account as stored now: a role change applies at the next click, and a disabled or
    removed account is signed out at once."""
    account = signed_in()
    if account is None:
        return None
    try:
        fresh = get_user(studio(), account.username)
    except StudioError:
        fresh = None
    if fresh is None or fresh.disabled or fresh.id != account.id:
        sign_out()
        st.session_state[ENDED_KEY] = True
        return None
    st.session_state[ACCOUNT_KEY] = fresh
    return fresh


def login() -> None:
    """The login page: every page's URL shows it until someone signs in, then that page opens."""
    st.title("Sign in")
    if st.session_state.pop(EXPIRED_KEY, False):
        st.info("You were signed out after a while without activity. Sign in again.")
    if st.session_state.pop(ENDED_KEY, False):
        st.warning("You were signed out: your account was disabled or removed. Ask an admin.")
    password_tab, pin_tab = st.tabs(["Password", "Operator PIN"])
    with password_tab, st.form("login"):
        username = st.text_input("Username", key="login-username")
        password = st.text_input("Password", type="password", key="login-password")
        if st.form_submit_button("Sign in", type="primary"):
            _sign_in(lambda: authenticate(studio(), username.strip(), password, device=device(), via="page"))
    with pin_tab, st.form("login-pin"):
        st.caption("Quick switch on a shared tablet: operator accounts with a PIN set by an admin.")
        username = st.text_input("Operator", key="pin-username")
        pin = st.text_input("PIN", type="password", max_chars=8, key="pin-secret")
        if st.form_submit_button("Switch operator"):
            _sign_in(lambda: authenticate_pin(studio(), username.strip(), pin, device=device()))


def _sign_in(attempt) -> None:  # noqa: ANN001 - a thunk returning an Account
    try:
        account = attempt()
    except StudioError as error:
        st.error(str(error))
    else:
        sign_in(account)
        st.rerun()


def password_change(forced: bool) -> None:
    """A form to change one's own password (``forced``: the account must change it before anything else)."""
    account = signed_in()
    if account is None:
        return
    if forced:
        st.title("Choose a new password")
        st.warning("Your password was set by an administrator (or is the first start's one-time password): "
                   "choose your own before going on.")
    with st.form("change-password", clear_on_submit=True):
        old = st.text_input("Current password", type="password", key="pw-old")
        new = st.text_input("New password", type="password", key="pw-new")
        again = st.text_input("New password again", type="password", key="pw-again")
        if st.form_submit_button("Change password", type="primary"):
            if new != again:
                st.error("The two new passwords differ.")
                return
            try:
                sign_in(change_password(studio(), account.username, old, new, device=device(), via="page"))
            except StudioError as error:
                st.error(str(error))
            else:
                st.success("Password changed.")
                if forced:
                    st.rerun()


def render_account_box() -> None:
    """Who is signed in, Sign out and Change password, and this device's name for the audit log (sidebar)."""
    device()  # its default, before the widget that edits it
    with st.sidebar.expander("This device", expanded=False):
        st.text_input("Device", key=DEVICE_KEY, help="recorded in the audit log with each action")
    account = signed_in()
    if account is None:
        return
    with st.sidebar:
        st.caption(f"Signed in as **{account.printed_name}** ({account.username}, {account.role})")
        if st.button("Sign out", key="sign-out", width="stretch"):
            sign_out()
            st.rerun()
        if not account.must_change_password:  # else the page itself shows the form
            with st.expander("Change password"):
                password_change(forced=False)
