"""Capture: add labelled images to the selected tool's dataset, from the camera or from files."""

import time

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from core.camera import FrameGrabber, LatestFrame
from core.config import rtc_configuration
from core.errors import StudioError
from core.samples import (
    Candidate,
    ImportReport,
    add_frames,
    add_images,
    class_counts,
    import_zip,
    open_zip,
    recent_samples,
    tool_roi,
)
from core.tools import add_class
from pages.common import require_tool, studio
from pages.identity import current_reviewer

TARGET_PER_CLASS = 20
FRAMES_KEY = "capture-frames"  # this session's LatestFrame (the video thread writes, the page reads)
LAST_KEY = "capture-last"  # the message of the last capture or import, shown after the rerun
MAX_FRAME_AGE_S = 2.0
NEW_CLASS = "+ New class..."

st.title("Capture")
tool = require_tool()
st.caption(f"Tool **{tool.name}**: collect labelled photos of parts. Aim for {TARGET_PER_CLASS}+ per class.")

counts_area = st.container()  # filled at the end, so the counts include this run's captures


def show_report(report: ImportReport, label: str, what: str) -> None:
    """The outcome of an import: what was added, duplicates, near-duplicates and each rejected file."""
    message = f"Added {report.imported} {what} as '{label}'"
    if report.duplicates:
        message += f"; {report.duplicates} duplicate(s) skipped"
    (st.warning if report.cancelled else st.success)(
        message + ("; import cancelled, what was imported is kept" if report.cancelled else ""))
    for name, similar in report.near_duplicates:
        st.info(f"{name} looks almost the same as sample #{similar} (near-duplicate)")
    for name, reason in report.rejected:
        st.error(f"{name}: {reason}")


# --- the label, chosen before capturing -----------------------------------------------------------
def add_new_class() -> None:
    """Create the class typed in the form and choose it (a callback: runs before the widgets)."""
    try:
        add_class(studio(), tool.name, st.session_state["new-class-name"], current_reviewer())
    except StudioError as error:
        st.session_state["new-class-error"] = str(error)
    else:
        st.session_state["capture-label"] = st.session_state["new-class-name"].strip().lower()


left, right = st.columns([2, 1])
label = left.selectbox("Label of new samples", [*tool.classes, NEW_CLASS], key="capture-label")
if label == NEW_CLASS:
    with right.form("new-class", clear_on_submit=True):
        st.text_input("New class name", placeholder="e.g. scratch", key="new-class-name")
        st.form_submit_button("Add class", on_click=add_new_class)
    if "new-class-error" in st.session_state:
        st.error(st.session_state.pop("new-class-error"))
    st.info("Name the new class and press **Add class** before capturing.")
    st.stop()

camera_tab, upload_tab = st.tabs(["Camera", "Upload files"])

# --- camera ---------------------------------------------------------------------------------------
with camera_tab:
    frames: LatestFrame = st.session_state.setdefault(FRAMES_KEY, LatestFrame())
    roi = tool_roi(studio(), tool.name)
    video_column, controls = st.columns([3, 2])
    with video_column:
        webrtc_streamer(
            key="capture-camera",
            mode=WebRtcMode.SENDRECV,
            rtc_configuration=rtc_configuration(),
            media_stream_constraints={"video": True, "audio": False},
            video_frame_callback=FrameGrabber(frames, roi),
        )
        st.caption("The outlined rectangle is the tool's region of interest; only it is stored."
                   if roi else "The whole frame is stored (this tool has no region of interest).")
    with controls:
        snapshot = st.button(f"Snapshot as '{label}'", type="primary", icon=":material/photo_camera:",
                             width="stretch", key="snapshot")
        burst_count, burst_interval = st.columns(2)
        count = burst_count.number_input("Burst frames", 2, 100, 5, key="burst-count")
        interval = burst_interval.number_input("Every (s)", 0.1, 10.0, 0.5, step=0.1, key="burst-interval")
        start_burst = st.button("Burst", icon=":material/burst_mode:", width="stretch", key="burst",
                                help="take the frames while the part is turned by hand")
        messages = st.container()


def take_snapshot(frames: LatestFrame, roi: list[float] | None) -> None:
    frame = frames.latest(MAX_FRAME_AGE_S)
    if frame is None:
        st.warning("No camera frame: press START and allow the camera (or reconnect it).")
        return
    try:
        report = add_frames(studio(), tool.name, [frame.rgb], label, roi, actor=current_reviewer())
        show_report(report, label, "snapshot(s)")
    except StudioError as error:
        st.error(str(error))


def take_burst(frames: LatestFrame, roi: list[float] | None, count: int, interval: float) -> None:
    """``count`` new frames, ``interval`` seconds apart, each stored as it comes (a stop keeps them)."""
    bar = st.progress(0.0, text="Burst...")
    total = ImportReport()
    last = 0
    for index in range(count):
        frame = frames.wait_newer(last, timeout_s=MAX_FRAME_AGE_S)
        if frame is None:
            st.warning(f"The camera stopped after {index} frame(s); those are kept.")
            break
        last = frame.number
        try:
            report = add_frames(studio(), tool.name, [frame.rgb], label, roi, actor=current_reviewer())
        except StudioError as error:
            st.error(str(error))
            break
        total.imported += report.imported
        total.duplicates += report.duplicates
        total.rejected += report.rejected
        bar.progress((index + 1) / count, text=f"Burst {index + 1}/{count}")
        if index + 1 < count:
            time.sleep(interval)
    bar.empty()
    show_report(total, label, "frame(s)")


with messages:
    if snapshot:
        take_snapshot(frames, roi)
    if start_burst:
        take_burst(frames, roi, int(count), float(interval))

# --- files ----------------------------------------------------------------------------------------
with upload_tab:
    if st.session_state.pop("import-cancelled", False):
        done = st.session_state.pop("import-progress", (0, 0))
        st.warning(f"Import cancelled after {done[0]} of {done[1]} file(s); the files imported before are kept.")
    with st.form("upload", clear_on_submit=True):
        files = st.file_uploader("Images (PNG, JPEG, BMP, TIFF) or .zip files (one folder per class, or flat)",
                                 accept_multiple_files=True, type=["png", "jpg", "jpeg", "bmp", "tif", "tiff", "zip"])
        submitted = st.form_submit_button("Add to dataset", type="primary")
    if submitted:
        if not files:
            st.warning("Choose one or more images first.")
        else:
            st.button("Cancel import", icon=":material/cancel:",
                      on_click=lambda: st.session_state.update({"import-cancelled": True}))
            bar = st.progress(0.0, text="Importing...")

            def progress(done: int, total: int) -> None:
                st.session_state["import-progress"] = (done, total)
                bar.progress(done / total, text=f"Importing {done}/{total}")

            images = [Candidate(f.name, label, f.getvalue) for f in files if not f.name.lower().endswith(".zip")]
            zips = [f for f in files if f.name.lower().endswith(".zip")]
            # each upload on its own: one bad .zip never hides the report of what was imported before it
            reports, failures = [], []
            if images:
                try:
                    reports.append(add_images(studio(), tool.name, images, "upload", progress,
                                              actor=current_reviewer()))
                except StudioError as error:
                    failures.append(f"The images: {error}")
            for upload in zips:
                try:
                    archive = open_zip(upload.getvalue(), upload.name)
                except StudioError as error:  # the message names the file
                    failures.append(str(error))
                    continue
                try:
                    with archive:
                        reports.append(import_zip(studio(), tool.name, archive, upload.name, None, "upload",
                                                  progress, fallback_label=label, actor=current_reviewer()))
                except StudioError as error:
                    failures.append(f"{upload.name}: {error}")
            bar.empty()
            st.session_state.pop("import-progress", None)
            for failure in failures:
                st.error(failure)
            if reports:
                merged = ImportReport()
                for report in reports:
                    merged.imported += report.imported
                    merged.duplicates += report.duplicates
                    merged.rejected += report.rejected
                    merged.near_duplicates += report.near_duplicates
                show_report(merged, label, "image(s)")

counts = class_counts(studio(), tool.name)
for column, (name, value) in zip(counts_area.columns(len(counts)), counts.items(), strict=True):
    column.metric(name, f"{value} / {TARGET_PER_CLASS}")

samples = recent_samples(studio(), tool.name, limit=12)
if samples:
    st.subheader("Latest samples")
    for row in range(0, len(samples), 6):
        for column, sample in zip(st.columns(6), samples[row : row + 6]):
            column.image(studio().images.viewable(sample.image_key), caption=f"{sample.label} · {sample.source}")
