"""Electronic signatures on the pages (21 CFR Part 11, sections 11.50 and 11.200): the password field a
signed action asks for, with the meaning of the signature shown, and the signatures a record carries."""

from __future__ import annotations

import streamlit as st

from core.auth.guard import auth_enabled
from core.auth.signatures import Meaning, signatures_for
from pages.common import studio


def signature_password(meaning: Meaning, what: str, key: str) -> str | None:
    """A password field for signing ``what`` with ``meaning`` (its value is passed to the service, which
    checks it); None in single-user mode, where nothing is signed. Call it inside the action's form."""
    if not auth_enabled():
        return None
    st.caption(f"Electronic signature, meaning **{meaning}**: {what}. Re-enter your password to sign.")
    return st.text_input("Your password (signature)", type="password", key=key) or None


def show_signatures(record_kind: str, record_id: str | int) -> None:
    """Each signature of a record: printed name, UTC time and meaning."""
    for signature in signatures_for(studio(), record_kind, record_id):
        st.caption(f":material/verified: Signed ({signature.meaning}) by {signature.full_name} "
                   f"({signature.username}) on {signature.signed_at:%Y-%m-%d %H:%M:%S} UTC; "
                   f"content sha256 {signature.content_hash[:12]}…")

