"""Who is signed in at this browser tab: the account (or the local user in single-user mode), the device,
and the Actor every page passes to the services (via="page")."""

from __future__ import annotations

import getpass
import uuid
from datetime import UTC, datetime

import streamlit as st

from core.auth import sessions
from core.auth.accounts import Account
from core.auth.guard import auth_enabled
from core.auth.roles import PAGE_PERMISSIONS, Permission, allows
from core.reviews import Reviewer

ACCOUNT_KEY, LAST_SEEN_KEY = "auth-account", "auth-last-seen"
DEVICE_KEY, SESSION_KEY = "reviewer-device", "reviewer-session"
SESSION_PARAM = "reviewer"
EXPIRED_KEY = "auth-expired"


def _default_device() -> str:
    agent = (st.context.headers.get("User-Agent") or "").lower()
    kind = next((label for word, label in (("ipad", "iPad"), ("android", "Android"), ("iphone", "iPhone"),
                                            ("windows", "Windows PC"), ("mac os", "Mac"), ("linux", "Linux PC"))
                 if word in agent), "browser")
    address = st.context.ip_address
    return f"{kind} {address}" if address else kind


def signed_in() -> Account | None:
    """The signed-in account of this tab, or None (also after the idle timeout, which signs it out)."""
    account = st.session_state.get(ACCOUNT_KEY)
    if account is None:
        return None
    now = datetime.now(UTC)
    last_seen = st.session_state.get(LAST_SEEN_KEY) or now
    if sessions.expired(last_seen, now, sessions.idle_minutes()):
        sign_out()
        st.session_state[EXPIRED_KEY] = True
        return None
    st.session_state[LAST_SEEN_KEY] = now
    return account


def sign_in(account: Account) -> None:
    """Keep ``account`` as this tab's signed-in account."""
    st.session_state[ACCOUNT_KEY] = account
    st.session_state[LAST_SEEN_KEY] = datetime.now(UTC)
    st.session_state.pop(EXPIRED_KEY, None)


def sign_out() -> None:
    st.session_state.pop(ACCOUNT_KEY, None)
    st.session_state.pop(LAST_SEEN_KEY, None)


def device() -> str:
    st.session_state.setdefault(DEVICE_KEY, _default_device())
    return str(st.session_state[DEVICE_KEY]).strip()


def current_reviewer() -> Reviewer:
    """This tab's actor: the signed-in account (single-user mode: the local OS user, every right), its
    device, and a session id that owns this tab's claims in the review queue."""
    # The claim owner lives in the URL too, so that reloading the tab keeps its card instead of
    # waiting for its own claim to expire.
    session = st.session_state.get(SESSION_KEY) or st.query_params.get(SESSION_PARAM) or uuid.uuid4().hex
    st.session_state[SESSION_KEY] = session
    if st.query_params.get(SESSION_PARAM) != session:
        st.query_params[SESSION_PARAM] = session
    account = st.session_state.get(ACCOUNT_KEY)
    if account is None:  # single-user mode (the router lets no one else through)
        return Reviewer(_local_user(), device(), via="page", session=session)
    return Reviewer(account.username, device(), role=account.role, via="page", user_id=account.id, session=session)


def may(permission: Permission) -> bool:
    """Whether the signed-in account's role allows ``permission`` (always, in single-user mode): pages
    use it only to hide what the service would refuse anyway."""
    if not auth_enabled():
        return True
    account = st.session_state.get(ACCOUNT_KEY)
    return account is not None and allows(account.role, permission)


def may_open(url_path: str) -> bool:
    needed = PAGE_PERMISSIONS.get(url_path)
    return needed is None or may(needed)


def _local_user() -> str:
    try:
        return getpass.getuser() or "local"
    except OSError:
        return "local"
