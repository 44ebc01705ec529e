"""Who is working at which device, for claims and the audit log (review and models pages)."""

from __future__ import annotations

import uuid

import streamlit as st

from core.reviews import Reviewer

NAME_KEY, DEVICE_KEY, SESSION_KEY = "reviewer-name", "reviewer-device", "reviewer-session"
SESSION_PARAM = "reviewer"


def _default_device() -> str:
    agent = (st.context.headers.get("User-Agent") or "").lower()
    kind = next((label for word, label in (("ipad", "iPad"), ("android", "Android"), ("iphone", "iPhone"),
                                            ("windows", "Windows PC"), ("mac os", "Mac"), ("linux", "Linux PC"))
                 if word in agent), "browser")
    address = st.context.ip_address
    return f"{kind} {address}" if address else kind


def current_reviewer() -> Reviewer:
    """This browser tab's reviewer: a name and device the person may edit (sidebar), and a session id
    that owns this tab's claims."""
    # The claim owner lives in the URL too, so that reloading the tab keeps its card instead of
    # waiting for its own claim to expire.
    session = st.session_state.get(SESSION_KEY) or st.query_params.get(SESSION_PARAM) or uuid.uuid4().hex
    st.session_state[SESSION_KEY] = session
    if st.query_params.get(SESSION_PARAM) != session:
        st.query_params[SESSION_PARAM] = session
    st.session_state.setdefault(NAME_KEY, "operator")
    st.session_state.setdefault(DEVICE_KEY, _default_device())
    with st.sidebar.expander("Reviewer", expanded=False):
        st.text_input("Your name", key=NAME_KEY)
        st.text_input("This device", key=DEVICE_KEY, help="recorded in the audit log with each action")
    return Reviewer(st.session_state[NAME_KEY].strip() or "operator", st.session_state[DEVICE_KEY].strip(),
                    session=st.session_state[SESSION_KEY])
