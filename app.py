"""Visual inspection studio: the router. Pages live in pages/, services in core/.

With authentication on (the default), nothing but the login page runs until someone signs in; then
the sidebar lists only the pages the account's role may open, and a page opened by its URL without
that right is refused (and the refusal audited) before any of it runs."""

import streamlit as st

from core.auth.guard import auth_enabled, require
from core.auth.roles import PAGE_PERMISSIONS
from core.errors import StudioError
from pages.account import current_account, login, password_change, render_account_box
from pages.common import render_sidebar, studio
from pages.identity import current_reviewer, may_open

st.set_page_config(page_title="Inspection studio", page_icon=":material/center_focus_strong:", layout="wide")

PAGES = [  # file, title, icon, url path
    ("pages/capture.py", "Capture", ":material/photo_camera:", "capture"),
    ("pages/dataset.py", "Dataset", ":material/photo_library:", "dataset"),
    ("pages/train.py", "Train", ":material/model_training:", "train"),
    ("pages/live.py", "Live", ":material/videocam:", "live"),
    ("pages/review.py", "Review", ":material/fact_check:", "review"),
    ("pages/analytics.py", "Analytics", ":material/monitoring:", "analytics"),
    ("pages/models.py", "Models", ":material/history:", "models"),
    ("pages/line.py", "Line", ":material/precision_manufacturing:", "line"),
    ("pages/fleet.py", "Fleet", ":material/lan:", "fleet"),
    ("pages/api_tokens.py", "API tokens", ":material/key:", "api-tokens"),
    ("pages/users.py", "Users", ":material/group:", "admin"),
]

account = current_account() if auth_enabled() else None
if auth_enabled() and account is None:
    # Every URL shows the login page; after signing in the same URL opens the page asked for.
    st.navigation([st.Page(login, title="Sign in", url_path="login", default=True)]
                  + [st.Page(f, title=t, url_path=u, visibility="hidden") for f, t, _, u in PAGES],
                  position="hidden")
    login()
    st.stop()

allowed = [u for *_, u in PAGES if may_open(u)]
pages = {u: st.Page(f, title=t, icon=i, url_path=u, default=u == allowed[0],
                    visibility="visible" if u in allowed else "hidden") for f, t, i, u in PAGES}
navigation = st.navigation(list(pages.values()))
url_path = next(u for u, page in pages.items() if page is navigation)
if not auth_enabled():
    st.warning("Single-user mode (STUDIO_AUTH=off): no sign-in, and whoever reaches this page may do "
               "everything. Nothing is protected.", icon=":material/lock_open:")
render_sidebar()
render_account_box()
if account is not None and account.must_change_password:
    password_change(forced=True)
    st.stop()
if url_path not in allowed:
    try:
        require(studio(), current_reviewer(), PAGE_PERMISSIONS[url_path], f"page {url_path}")
    except StudioError as error:
        st.error(f"This page is not open to your account: {error}", icon=":material/block:")
        st.stop()
navigation.run()
