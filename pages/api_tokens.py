"""API tokens: create one for a MES or a script (shown once), see them all, revoke one. The REST API
itself runs as its own service (``python -m core api``, see the README)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.api.tokens import SCOPES, create_token, list_tokens, revoke_token
from core.errors import StudioError
from pages.common import studio
from pages.identity import current_reviewer

st.title("API tokens")
st.caption("Tokens let a MES, a PLC gateway or a script call the REST API (`python -m core api`, "
           "documented at `/docs`). Scopes: **read** (tools, inspections, metrics), **inspect** (also inspect "
           "images), **admin** (everything). Only a hash of each token is kept.")
actor = current_reviewer()

with st.form("new-token", clear_on_submit=True):
    name = st.text_input("Name", placeholder="e.g. mes-line-1", help="what will use the token", key="token-name")
    scopes = st.multiselect("Scopes", SCOPES, default=["inspect"], key="token-scopes")
    created = st.form_submit_button("Create token", type="primary")
if created:
    try:
        info, secret = create_token(studio(), name, scopes, actor)
    except StudioError as error:
        st.error(str(error))
    else:
        st.success(f"Token **{info.name}** created. Copy it now: it is shown this once and cannot be shown again.")
        st.code(secret, language=None)

tokens = list_tokens(studio())
active = [t for t in tokens if t.revoked_at is None]
if active:
    choice = st.selectbox("Token to revoke", active, format_func=lambda t: f"{t.name} ({t.prefix}…, id {t.id})",
                          key="revoke-choice")
    if st.button("Revoke", key="revoke"):
        try:
            revoke_token(studio(), choice.id, actor)
        except StudioError as error:
            st.error(str(error))
        else:
            st.success(f"Token {choice.name} revoked: requests with it are refused from now on.")
            tokens = list_tokens(studio())

if tokens:
    st.dataframe(pd.DataFrame([t.as_dict() for t in tokens]).set_index("id"), width="stretch")
else:
    st.info("No API token yet.")
