"""Users (admins): add accounts, list them, disable / enable, reset a password (the one-time password is
shown once), set a role, set an operator's quick-switch PIN. The service refuses all of it to non-admins."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import accounts
from core.auth.roles import Role
from core.errors import StudioError
from pages.common import studio
from pages.identity import current_reviewer

st.title("Users")
st.caption("Roles: **viewer** (looks), **operator** (capture, live, review), **engineer** (train, thresholds, "
           "ROI, recipes, promote), **admin** (users, outputs, tokens, settings). See the README's permission table.")
actor = current_reviewer()


def _act(done: str, action) -> object:  # noqa: ANN001 - a thunk calling one accounts service
    try:
        result = action()
    except StudioError as error:
        st.error(str(error))
        return None
    st.success(done)
    return result


with st.form("new-user", clear_on_submit=True):
    left, middle, right = st.columns(3)
    username = left.text_input("Username", key="user-name")
    full_name = middle.text_input("Printed name", key="user-full-name", help="shown on signatures")
    role = right.selectbox("Role", list(Role), index=1, key="user-role")
    password = st.text_input("Initial password", type="password", key="user-password",
                             help="the person must change it at first sign-in")
    if st.form_submit_button("Add user", type="primary"):
        _act(f"Account {username.strip()} added.", lambda: accounts.create_user(
            studio(), actor, username, password, role, full_name, must_change_password=True))

try:
    users = accounts.list_users(studio(), actor)
except StudioError as error:
    st.error(str(error))
    st.stop()
st.dataframe(pd.DataFrame([{"username": u.username, "printed name": u.full_name, "role": str(u.role),
                            "disabled": u.disabled, "must change password": u.must_change_password,
                            "locked until": u.locked_until} for u in users]), hide_index=True, width="stretch")

st.subheader("Change an account")
chosen = st.selectbox("Account", [u.username for u in users], key="user-chosen")
if chosen:
    current = next(u for u in users if u.username == chosen)
    role_col, state_col, reset_col = st.columns(3)
    with role_col:
        new_role = st.selectbox("Role", list(Role), index=list(Role).index(current.role), key="user-new-role")
        if st.button("Set role", key="user-set-role"):
            _act(f"{chosen} is now {new_role}.", lambda: accounts.set_role(studio(), actor, chosen, new_role))
    with state_col:
        if current.disabled:
            if st.button("Enable", key="user-enable"):
                _act(f"{chosen} enabled.", lambda: accounts.enable(studio(), actor, chosen))
        elif st.button("Disable", key="user-disable"):
            _act(f"{chosen} disabled: it can no longer sign in.", lambda: accounts.disable(studio(), actor, chosen))
    with reset_col:
        if st.button("Reset password", key="user-reset"):
            one_time = _act(f"Password of {chosen} reset. Give this one-time password to the person; it is "
                            "shown this once and must be changed at the next sign-in:",
                            lambda: accounts.reset_password(studio(), actor, chosen))
            if one_time:
                st.code(one_time, language=None)
    if current.role == Role.OPERATOR:
        with st.form("user-pin", clear_on_submit=True):
            pin = st.text_input("Quick-switch PIN (4 to 8 digits)", type="password", max_chars=8, key="user-pin")
            if st.form_submit_button("Set PIN"):
                _act(f"PIN of {chosen} set.", lambda: accounts.set_pin(studio(), actor, chosen, pin))
