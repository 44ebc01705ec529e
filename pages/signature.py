"""The e-signature fields of the pages (21 CFR Part 11, sections 11.50 / 11.200): the signer re-enters the
password beside an action that needs a signature and sees what the signature means. The services check
the password, store the signature and audit a refusal (``core/auth/signatures.py``); the pages only ask.
"""

from __future__ import annotations

import streamlit as st

from core.auth.guard import auth_enabled
from core.auth.signatures import Signature, signatures_for
from core.studio import Studio
from pages.identity import current_reviewer


def needs_signature() -> bool:
    """Whether actions of this session are signed: authentication on and an account signed in."""
    return auth_enabled() and current_reviewer().user_id is not None


def signature_field(key: str, meaning: str, what: str) -> str | None:
    """A password field that signs ``what`` with ``meaning`` ("approved", "reviewed"); None when this
    session does not sign (single-user mode). The entered password never leaves the session state."""
    if not needs_signature():
        return None
    name = current_reviewer().name
    return st.text_input(f"Password of {name} to sign", type="password", key=key,
                         help=f"Electronic signature: your password signs {what}, meaning \"{meaning}\", "
                              "with your printed name and the UTC time (21 CFR 11.50).") or None


def show_signatures(studio: Studio, record_kind: str, record_id: str | int, limit: int = 5) -> None:
    """The newest signatures of a record, as text (printed name, meaning, UTC time, content hash)."""
    signed = signatures_for(studio, record_kind, record_id)[-limit:]
    for signature in reversed(signed):
        st.text(signature_line(signature))


def signature_line(signature: Signature) -> str:
    corrects = f"; corrects signature {signature.corrects_id}" if signature.corrects_id else ""
    return (f"Signed: {signature.as_text()} (signature {signature.id}, content SHA-256 "
            f"{signature.content_hash[:12]}...{corrects})")
