"""Dataset: browse a tool's samples as thumbnails, filter them, select many and act, see statistics."""

from datetime import date

import pandas as pd
import streamlit as st

from core import dataset
from core.dataset import PAGE_SIZE, SOURCES, DatasetFilter
from core.errors import StudioError
from core.export import export_dataset
from pages.common import require_tool, studio
from pages.identity import current_reviewer

COLUMNS = 6
UNDO_KEY = "dataset-undo"  # ids of the last delete
MESSAGE_KEY = "dataset-message"
SPLIT_NAMES = {"train": "training", "held_out": "held-out"}

st.title("Dataset")
tool = require_tool()


def picked_ids() -> list[int]:
    return sorted(int(key[5:]) for key, value in st.session_state.items()
                  if isinstance(key, str) and key.startswith("pick-") and value)


def clear_picks() -> None:
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith("pick-")]:
        st.session_state[key] = False


def act(action: str) -> None:
    """Run a bulk action on the picked samples (a button callback, so the grid shows the result)."""
    ids = picked_ids()
    if not ids and action != "undo":
        st.session_state[MESSAGE_KEY] = ("warning", "Select one or more samples first.")
        return
    try:
        if action == "relabel":
            new = st.session_state["dataset-relabel-to"]
            relabelled = dataset.relabel(studio(), tool.name, ids, new, current_reviewer())
            message = f"{relabelled} sample(s) relabelled as '{new}'."
        elif action == "delete":
            deleted = dataset.delete(studio(), tool.name, ids, current_reviewer())
            st.session_state[UNDO_KEY] = deleted
            message = f"{len(deleted)} sample(s) deleted. Undo brings them back."
        elif action == "undo":
            restored = dataset.restore(studio(), tool.name, st.session_state.pop(UNDO_KEY, []), current_reviewer())
            message = f"{restored} sample(s) restored."
        elif action == "restore":
            message = f"{dataset.restore(studio(), tool.name, ids, current_reviewer())} sample(s) restored."
        else:
            marked = dataset.set_split(studio(), tool.name, ids, action, current_reviewer())
            message = f"{marked} sample(s) marked {SPLIT_NAMES[action]}."
    except StudioError as error:
        st.session_state[MESSAGE_KEY] = ("error", str(error))
        return
    st.session_state[MESSAGE_KEY] = ("success", message)
    clear_picks()


def select_page(ids: list[int]) -> None:
    for sample_id in ids:
        st.session_state[f"pick-{sample_id}"] = True


# --- statistics -----------------------------------------------------------------------------------
stats = dataset.stats(studio(), tool.name)
for column, row in zip(st.columns(len(stats)), stats):
    column.metric(row.label, f"{row.total}", help=f"{row.train} training · {row.held_out} held-out · "
                                                  f"{row.deleted} deleted")
with st.expander("Statistics per class"):
    st.dataframe(pd.DataFrame([{"class": s.label, "training": s.train, "held-out": s.held_out, "total": s.total,
                                "deleted": s.deleted} for s in stats]), hide_index=True)

# --- filters --------------------------------------------------------------------------------------
labels_col, sources_col, splits_col, dates_col, deleted_col = st.columns([2, 2, 2, 2.3, 1.3],
                                                                        vertical_alignment="bottom")
labels = labels_col.multiselect("Label", [s.label for s in stats], key="filter-labels")
sources = sources_col.multiselect("Source", list(SOURCES), key="filter-sources")
splits = splits_col.multiselect("Split", list(SPLIT_NAMES), format_func=SPLIT_NAMES.get, key="filter-splits")
days = dates_col.date_input("Captured between", value=(), key="filter-days")
show_deleted = deleted_col.toggle("Deleted", key="filter-deleted")
first_day = days[0] if len(days) >= 1 else None
last_day = days[1] if len(days) == 2 else first_day
filters = DatasetFilter(labels, sources, splits, first_day, last_day, show_deleted)

page_number = st.session_state.get("dataset-page", 1)
try:
    page = dataset.browse(studio(), tool.name, filters, page_number, PAGE_SIZE)
except StudioError as error:
    st.error(str(error))
    st.stop()

# --- actions --------------------------------------------------------------------------------------
kind, text = st.session_state.pop(MESSAGE_KEY, (None, None))
if kind:
    getattr(st, kind)(text)
page_ids = [item.id for item in page.items]
bar = st.columns([1.4, 1, 1, 1, 1, 1.3], vertical_alignment="bottom")
bar[0].selectbox("New label", tool.classes, key="dataset-relabel-to")
bar[1].button("Relabel", on_click=act, args=("relabel",), width="stretch")
if show_deleted:
    bar[2].button("Restore", on_click=act, args=("restore",), width="stretch", type="primary")
else:
    bar[2].button("Delete", on_click=act, args=("delete",), width="stretch", icon=":material/delete:")
bar[3].button("Held-out", on_click=act, args=("held_out",), width="stretch",
              help="keep for evaluation: never trained on")
bar[4].button("Training", on_click=act, args=("train",), width="stretch", help="back into the training split")
bar[5].button("Undo delete", on_click=act, args=("undo",), width="stretch", icon=":material/undo:",
              disabled=not st.session_state.get(UNDO_KEY))

# --- the grid -------------------------------------------------------------------------------------
info, select_all, clear, page_input = st.columns([3, 1, 1, 1.2], vertical_alignment="bottom")
info.caption(f"{page.total:,} sample(s) · page {page.page} of {page.pages} · {len(picked_ids())} selected")
select_all.button("Select page", on_click=select_page, args=(page_ids,), width="stretch")
clear.button("Clear", on_click=clear_picks, width="stretch")
if st.session_state.get("dataset-page", 1) > page.pages:
    st.session_state["dataset-page"] = page.pages
page_input.number_input("Page", 1, page.pages, page.page, key="dataset-page")
if not page.items:
    st.info("No sample matches these filters." if page.total == 0 and (labels or sources or splits or days
                                                                         or show_deleted)
            else "No samples yet: add some on the Capture page.")
for row in range(0, len(page.items), COLUMNS):
    for column, item in zip(st.columns(COLUMNS), page.items[row : row + COLUMNS]):
        with column:
            if item.thumbnail is not None:
                st.image(item.thumbnail, width="stretch")
            else:
                st.warning("image missing")
            split = " · held-out" if item.split == "held_out" else ""
            mask = " · mask" if item.has_mask else ""
            st.checkbox(f"#{item.id} {item.label}{split}{mask}", key=f"pick-{item.id}",
                        help=f"{item.name or ''} · {item.source} · {item.width}x{item.height} · "
                             f"{item.created_at:%Y-%m-%d %H:%M}")

# --- near-duplicates and export -------------------------------------------------------------------
with st.expander("Near-duplicates"):
    pairs = dataset.near_duplicates(studio(), tool.name)
    if pairs:
        st.write(f"{len(pairs)} pair(s) of samples look almost the same (perceptual hash):")
        st.dataframe(pd.DataFrame(pairs[:500], columns=["sample", "looks like", "differing bits"]), hide_index=True)
    else:
        st.write("No near-duplicates.")

with st.expander("Export"):
    st.write("A .zip with one folder per class and manifest.csv (hashes, labels, splits); "
             "import it again on the Capture page or with `python -m core samples import`.")
    if st.button("Prepare export", icon=":material/archive:"):
        target = studio().settings.data_dir / "exports" / f"{tool.name}-{date.today():%Y%m%d}.zip"
        bar_export = st.progress(0.0, text="Exporting...")
        count = export_dataset(studio(), tool.name, target,
                               progress=lambda done, total: bar_export.progress(done / total,
                                                                                text=f"Exporting {done}/{total}"))
        bar_export.empty()
        st.download_button(f"Download {target.name} ({count} samples)", target.read_bytes(), target.name,
                           mime="application/zip", type="primary")
