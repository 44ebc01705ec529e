"""Tool bundles on the Models page: download the selected tool as a bundle, import a bundle as a new tool.

Shown above the page's tool check, so that a fresh station (no tool yet) can import its first tool.
Signing needs a private key file, so it stays on the command line (``tools export --sign``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from core.audit import Actor
from core.bundle.export import export_bundle
from core.bundle.import_ import ACTIVATIONS, import_bundle
from core.bundle.signing import signature_required_by_default
from core.errors import StudioError
from pages.common import TOOL_KEY, studio
from pages.identity import current_reviewer

PREPARED = "bundle-prepared"  # (tool, with images, bytes) of the last prepared bundle
ACTIVATION_LABELS = {"as-exported": "as in the bundle (its active models decide here too)",
                     "activate": "activate the newest version of each method",
                     "candidate": "as candidates (promote them below after a check)"}


def render_bundle_panel() -> None:
    """An expander with the export and import of tool bundles."""
    tool = st.session_state.get(TOOL_KEY)
    with st.expander("Tool bundles: move a tool to another station", expanded=not tool):
        left, right = st.columns(2)
        with left:
            _export(tool)
        with right:
            _import()


def _actor() -> Actor:
    """The signed-in account (``pages.identity``)."""
    return current_reviewer()


def _export(tool: str | None) -> None:
    st.caption("Export: classes, settings, ROI, active models and recipes in one .zip (sign it with "
               "`python -m core tools export --sign KEYFILE`).")
    if not tool:
        st.info("No tool to export yet.")
        return
    images = st.checkbox("Include the dataset (images and labels)", key="bundle-images")
    if st.button(f"Prepare the bundle of {tool}", key="bundle-export"):
        with st.spinner("Writing the bundle..."), tempfile.TemporaryDirectory() as folder:
            try:
                path = export_bundle(studio(), tool, Path(folder) / f"{tool}.zip", with_images=images,
                                     actor=current_reviewer()).path
            except StudioError as error:
                st.error(str(error))
                return
            st.session_state[PREPARED] = (tool, images, path.read_bytes())
    prepared = st.session_state.get(PREPARED)
    if prepared and prepared[0] == tool:
        st.download_button(f"Download {tool}.zip", prepared[2], file_name=f"{tool}.zip", mime="application/zip",
                           key="bundle-download", type="primary")


def _import() -> None:
    st.caption("Import: a bundle becomes a new tool; it is checked whole first (hashes, signature, models) and "
               "nothing is written if any check fails.")
    upload = st.file_uploader("Bundle (.zip)", type=["zip"], key="bundle-upload")
    as_name = st.text_input("Import as (empty: the bundle's tool name)", key="bundle-as").strip() or None
    activation = st.radio("Models", ACTIVATIONS, format_func=ACTIVATION_LABELS.get, key="bundle-activation")
    forced = signature_required_by_default()
    required = st.checkbox("Require a signature by a trusted key", value=forced, disabled=forced,
                           key="bundle-require", help="STUDIO_REQUIRE_SIGNED_BUNDLES=1 makes it always required; "
                           "trusted keys: STUDIO_TRUSTED_KEYS or <data folder>/trusted-keys")
    if upload is not None and st.button("Import", key="bundle-import", type="primary"):
        try:
            result = import_bundle(studio(), upload.getvalue(), _actor(), name=upload.name, as_name=as_name,
                                   activation=activation, require_signature=required or forced)
        except StudioError as error:
            st.error(str(error))
            return
        st.success(f"Imported tool {result.tool!r} ({result.signature}); active models: "
                   f"{', '.join(f'{m} v{v}' for m, v in result.active.items()) or 'none (candidates)'}"
                   + (f"; {result.samples} samples" if result.samples is not None else ""))
        for note in result.notes:
            st.caption(note)
