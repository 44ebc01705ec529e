"""Live: inspect the camera stream (or the demo stream, or a photo) with the tool's models.

Widgets only: frames are processed by core.live (the video callback calls the processor and
nothing else), inspections are written by the process-wide writer thread.
"""

import atexit
import io

import av
import cv2
import pandas as pd
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from core.config import Settings, rtc_configuration
from core.errors import StudioError
from core.images import ImageRejectedError
from core.inspect.models import ToolModels, load_tool_models
from core.inspect.roi import ROI_CHOICES
from core.inspect.service import predict_image
from core.live.demo import demo_images, place
from core.live.processor import FrameProcessor, FrameReport
from core.live.session import LiveSession, capture_sample
from core.live.settings import LiveConfig
from core.live.tool import live_config, save_live_config
from core.live.writer import InspectionWriter
from core.overlay import overlay_anomaly_map
from core.roi import roi_pixels
from core.tool_settings import MAX_SMOOTHING, TRIGGERS
from core.tools import list_tools, set_roi
from pages.common import require_tool, studio
from pages.identity import current_reviewer
from pages.signature import signature_field

BANNERS = {"pass": ("PASS", "#1a7f37"), "fail": ("FAIL", "#cf222e"), "review": ("REVIEW", "#bf8700")}
TRIGGER_LABELS = {"continuous": "Continuous", "part-present": "Part present", "manual": "Manual (Inspect button)"}
CANVAS_WIDTH, CANVAS_HEIGHT = 640, 480
CAMERA_TEXTS = {
    "media_api_not_available": "This browser gives no camera on this connection. Open the studio on "
                               "http://localhost or over HTTPS (see the README: serving over HTTPS).",
    "device_ask_permission": "Allow the camera when the browser asks.",
    "device_access_denied": "Camera permission denied: allow the camera for this site (camera icon in the "
                            "address bar), then press START again. The Demo stream tab works without a camera.",
    "device_not_available": "No camera found: plug one in, or use the Demo stream tab.",
}


@st.cache_resource(show_spinner=False)
def _writer(settings: Settings) -> InspectionWriter:
    """One writer thread per studio and process; flushed (or spooled to disk) when the server stops."""
    writer = InspectionWriter(studio())
    atexit.register(writer.close)
    return writer


def roi_of(tool: ToolModels) -> list[float] | None:
    return list(tool.roi) if tool.roi else None


def _session(tool_name: str) -> LiveSession:
    key = f"live-session-{tool_name}"
    if key not in st.session_state:
        st.session_state[key] = LiveSession(live_config(studio(), tool_name))
    return st.session_state[key]


def _banner(decision: str, size: str = "2.6rem") -> None:
    text, colour = BANNERS[decision]
    st.markdown(
        f"<div style='background:{colour};color:white;font-size:{size};font-weight:700;text-align:center;"
        f"border-radius:12px;padding:0.6rem'>{text}</div>",
        unsafe_allow_html=True,
    )


def _controls(tool_name: str, session: LiveSession) -> LiveConfig:
    """Live settings; every change reaches the video thread at its next frame."""
    current = session.settings.snapshot()
    with st.container(border=True):
        st.markdown("**Live settings**")
        trigger = st.radio("Trigger", TRIGGERS, index=TRIGGERS.index(current.trigger),
                           format_func=TRIGGER_LABELS.__getitem__, horizontal=True, key="live-trigger")
        if trigger == "manual" and st.button("INSPECT", type="primary", width="stretch", key="live-inspect",
                                             help="Record one inspection of the next frame"):
            session.settings.request_inspection()
            st.toast("Inspecting the next frame")
        thresholds = {method: st.slider(f"Threshold: {method} (score)", 0.0, 1.0, float(value), 0.01,
                                        key=f"live-threshold-{method}")
                      for method, value in current.thresholds.items()}
        smoothing = st.slider("Smoothing (frames)", 1, MAX_SMOOTHING, current.smoothing, key="live-smoothing")
        tta = st.toggle("Test-time augmentation (mirror)", current.tta, key="live-tta")
        heatmap = st.toggle("Heatmap", current.heatmap, key="live-heatmap")
        opacity = st.slider("Heatmap opacity", 0.0, 1.0, current.heatmap_opacity, 0.05, key="live-opacity",
                            disabled=not heatmap)
        config = session.settings.update(thresholds=thresholds, trigger=trigger, smoothing=smoothing, tta=tta,
                                         heatmap=heatmap, heatmap_opacity=opacity)
        password = signature_field("live-signature", "approved", "a change of thresholds")
        if st.button("Save to tool", key="live-save", help="Make these the tool's settings (no retraining)"):
            try:
                save_live_config(studio(), tool_name, config, current_reviewer(), password)
            except StudioError as error:
                st.error(str(error))
            else:
                st.toast(f"Settings saved to tool {tool_name}")
    return config


def _station(tool: ToolModels) -> list[ToolModels]:
    """The page's tool first, then the other tools chosen to inspect the same frame (each in its own
    region, with its own model and saved threshold)."""
    others = [t.name for t in list_tools(studio()) if t.name != tool.tool and t.trained]
    if not others:
        return [tool]
    chosen = st.multiselect("Also inspect on this frame", others, key="live-station-tools",
                            help="Other tools of this station: each looks at its own region with its own model "
                                 "and saved threshold; the frame fails when any of them fails.")
    station = [tool]
    for name in chosen:
        try:
            station.append(load_tool_models(studio(), name))
        except StudioError as error:
            st.warning(f"{name}: {error}")
    return station


def _report_panel(report: FrameReport | None, writer: InspectionWriter) -> None:
    """The latest verdict from the video thread and the writer's state."""
    if report is None:
        st.caption("No frame inspected yet.")
    else:
        _banner(report.decision, size="3.2rem")
        result = report.tools[0]
        left, right = st.columns(2)
        left.metric("Live score", f"{result.score:.2f}")
        right.metric("Frames / s", f"{report.video_fps:.1f}")
        st.caption(f"Label **{result.label}** · {report.fps:.1f} verdicts / s · latency {report.latency_ms:.0f} ms · "
                   f"{report.recorded_total} inspection(s) recorded this session · score averaged over the "
                   f"smoothing window")
        for other in report.tools[1:]:
            st.caption(f"**{other.tool}**: {other.decision.upper()} · {other.label} · score {other.score:.2f}")
    status = writer.status()
    if status.error:
        st.warning(f"Database unavailable: {status.waiting} inspection(s) waiting; they are kept and written "
                   f"when it is back. ({status.error})")


def _camera_tab(tools: list[ToolModels], session: LiveSession, writer: InspectionWriter) -> None:
    tool = tools[0]
    processor = session.processor(tools, writer)
    worker = session.worker(processor)  # inference on its own thread: the video keeps the camera's pace

    def video_frame_callback(frame: av.VideoFrame) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(worker.process(frame.to_ndarray(format="rgb24")), format="rgb24")

    video, panel = st.columns([3, 2])
    with video:
        context = webrtc_streamer(
            key=f"live-camera-{tool.tool}",
            mode=WebRtcMode.SENDRECV,
            rtc_configuration=rtc_configuration(),
            media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
            video_frame_callback=video_frame_callback,
            async_processing=True,
            translations=CAMERA_TEXTS,
        )
        st.caption("Press START and allow the camera. Over plain HTTP from another device the browser "
                   "refuses the camera: serve the studio over HTTPS (README).")
    with panel:
        if context.state.playing:
            _live_status(session, processor, writer)
        else:  # no timer while the camera is off: a fragment rerun every second can lose a Photo-tab upload
            _report_panel(session.latest_report(), writer)


@st.fragment(run_every=1.0)
def _live_status(session: LiveSession, processor: FrameProcessor, writer: InspectionWriter) -> None:
    silent = session.camera_silent_for(processor)
    if silent is not None:
        st.error(f"No frames from the camera for {silent:.0f} s: is it unplugged? Plug it in and press START again.")
    _report_panel(session.latest_report(), writer)


def _demo_tab(tools: list[ToolModels], session: LiveSession, writer: InspectionWriter) -> None:
    tool = tools[0]
    st.caption("No camera? The tool's own images played as a 640 x 480 video, inspected like the camera.")
    record = st.toggle("Record demo inspections", value=False, key="live-demo-record")
    if not st.toggle("Play the demo stream", value=False, key="live-demo-play"):
        session.stop_demo()
        return
    try:
        images = demo_images(studio(), tool.tool, limit=24)
    except (StudioError, ImageRejectedError) as error:
        st.error(str(error))
        return
    if not images:
        st.info("This tool has no images yet: add some on the Capture page.")
        return
    processor = session.processor(tools, writer if record else None)
    _demo_player(session, images, processor, writer)


@st.fragment(run_every=0.2)
def _demo_player(session: LiveSession, images: list, processor: FrameProcessor, writer: InspectionWriter) -> None:
    video, panel = st.columns([3, 2])
    video.image(session.demo_step(images, processor), caption="Demo stream", width="stretch")
    with panel:
        _report_panel(processor.last_report, writer)


def _photo_tab(tool_name: str) -> None:
    left, right = st.columns([3, 2])
    with left:
        photo = st.file_uploader("Photo of a part", type=["png", "jpg", "jpeg", "bmp", "tif", "tiff"])
        record = st.toggle("Record this inspection", value=True, key="photo-record")
        roi = st.segmented_control("Region of interest", ROI_CHOICES, default="auto", key="photo-roi",
                                   help="auto: a camera-shaped photo is cropped to the tool's region, a photo "
                                        "of the part alone is judged whole") or "auto"
    if photo is None:
        right.info("Upload a photo to inspect it.")
        return
    recorded = st.session_state.get("photo-recorded", (None, None))
    again = recorded[0] == photo.file_id  # a rerun (e.g. from the camera widget) records the photo only once
    try:
        prediction = predict_image(studio(), tool_name, photo.name, photo.getvalue(), record=record and not again,
                                   roi=roi, actor=current_reviewer())
    except ImageRejectedError as error:
        st.error(f"{photo.name}: {error}")
        return
    except StudioError as error:
        st.error(str(error))
        return
    if prediction.inspection_id:
        st.session_state["photo-recorded"] = (photo.file_id, prediction.inspection_id)
    inspection_id = prediction.inspection_id or (recorded[1] if again else None)
    inspection = prediction.inspection
    verdict = inspection.verdict
    with right:
        _banner(verdict.decision)
        st.metric("Defect score", f"{verdict.score:.2f}")
        st.caption(f"Label **{verdict.label}** · {inspection.ms:.0f} ms"
                   + (f" · inspection #{inspection_id}" if inspection_id else ""))
        st.caption(" · ".join(
            f"{method} v{m.version_id}: **{m.verdict.decision if m.verdict else 'error'}**"
            + (f" (score {m.verdict.score:.2f}, threshold {m.threshold:.2f})" if m.verdict else "")
            for method, m in inspection.models.items())
            + (" · degraded: one model decided alone" if inspection.degraded else ""))
        if inspection.probabilities:
            st.bar_chart(pd.DataFrame({"probability": inspection.probabilities}), horizontal=True,
                         height=60 + 30 * len(inspection.probabilities))
    if inspection.map is not None:  # where the part looks defective, on the judged region
        height, width = inspection.crop.shape[:2]  # the models' maps are at their own resolution
        heat = cv2.resize(inspection.map, (width, height), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)
        overlay = overlay_anomaly_map(inspection.crop, heat, inspection.regions)
        left.image(overlay, caption=f"{photo.name}: defect map (red = unlike the good parts)")
    else:
        left.image(inspection.crop, caption=photo.name)


def _still(session: LiveSession, tool: ToolModels) -> tuple:
    """A still of the camera (or demo stream) to draw the ROI on; one of the tool's images before that."""
    frame = session.latest_frame()
    if frame is not None:
        return frame, "last camera frame"
    images = demo_images(studio(), tool.tool, limit=1)
    return (place(images[0]), "tool's first image (start the camera for a real still)") if images else (None, "")


def _roi_tab(tool: ToolModels, session: LiveSession) -> None:
    frame, origin = _still(session, tool)
    if frame is None:
        st.info("No still to draw on yet: start the camera (or the demo stream), then come back here.")
        return
    height, width = frame.shape[:2]
    st.caption(f"Drag a rectangle over the part on the {origin} (finger or mouse); the last rectangle counts.")
    scale = min(CANVAS_WIDTH / width, CANVAS_HEIGHT / height)
    canvas_w, canvas_h = int(width * scale), int(height * scale)
    x0, y0, x1, y1 = roi_pixels(roi_of(tool), canvas_w, canvas_h)
    current = {"objects": [{"type": "rect", "left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0,
                            "fill": "rgba(31,111,235,0.15)", "stroke": "#1f6feb", "strokeWidth": 3}]}
    background = Image.fromarray(frame).resize((canvas_w, canvas_h))
    buffer = io.BytesIO()
    background.save(buffer, format="PNG")
    canvas = st_canvas(fill_color="rgba(31,111,235,0.15)", stroke_color="#1f6feb", stroke_width=3,
                       background_image=buffer.getvalue(), height=canvas_h, width=canvas_w, drawing_mode="rect",
                       initial_drawing=current if roi_of(tool) else None, key=f"roi-canvas-{tool.tool}")
    drawn = [o for o in ((canvas.json_data or {}).get("objects") or []) if o.get("type") == "rect"]
    x_key, y_key, last_key = f"roi-x-{tool.tool}", f"roi-y-{tool.tool}", f"roi-drawn-{tool.tool}"
    saved = roi_of(tool) or [0.0, 0.0, 1.0, 1.0]
    st.session_state.setdefault(x_key, (saved[0], saved[2]))
    st.session_state.setdefault(y_key, (saved[1], saved[3]))
    if drawn:  # a rectangle drawn since the last run moves the sliders to it
        box = drawn[-1]
        w, h = box["width"] * box.get("scaleX", 1), box["height"] * box.get("scaleY", 1)
        fractions = [min(1.0, max(0.0, v)) for v in (box["left"] / canvas_w, box["top"] / canvas_h,
                                                      (box["left"] + w) / canvas_w, (box["top"] + h) / canvas_h)]
        signature = tuple(round(v, 3) for v in fractions)
        if st.session_state.get(last_key) != signature:
            st.session_state[last_key] = signature
            st.session_state[x_key] = (fractions[0], fractions[2])
            st.session_state[y_key] = (fractions[1], fractions[3])
    with st.expander("Adjust by numbers (fractions of the frame)"):
        xs = st.slider("Left - right", 0.0, 1.0, step=0.01, key=x_key)
        ys = st.slider("Top - bottom", 0.0, 1.0, step=0.01, key=y_key)
    proposal = [round(xs[0], 4), round(ys[0], 4), round(xs[1], 4), round(ys[1], 4)]
    st.caption("Region: " + ", ".join(f"{v:.2f}" for v in proposal) + (" (saved)" if proposal == roi_of(tool) else ""))
    left, right = st.columns(2)
    if left.button("Save region to tool", type="primary", key="roi-save", width="stretch"):
        try:
            set_roi(studio(), tool.tool, proposal, current_reviewer(), (width, height))
        except StudioError as error:
            st.error(str(error))
        else:
            st.rerun()
    if right.button("Use the whole frame", key="roi-clear", width="stretch"):
        try:
            set_roi(studio(), tool.tool, None, current_reviewer())
        except StudioError as error:
            st.error(str(error))
        else:
            st.rerun()


def _capture(tool: ToolModels, session: LiveSession, classes: list[str]) -> None:
    with st.expander("Capture the current part as a training sample"):
        label = st.selectbox("Label", classes, key="live-capture-label")
        if st.button("Capture", key="live-capture"):
            frame = session.latest_frame()
            if frame is None:
                st.warning("No frame yet: start the camera or the demo stream.")
                return
            try:
                report = capture_sample(studio(), tool.tool, frame, roi_of(tool), label, actor=current_reviewer())
            except StudioError as error:
                st.error(str(error))
                return
            st.success(f"Added {report.imported} sample(s) as {label!r}" if report.imported else
                       "This frame is a sample already.")


st.title("Live inspection")
tool_info = require_tool()
if not tool_info.trained:
    st.info(f"Tool **{tool_info.name}** has no trained model yet: train one on the Train page.")
    st.stop()
try:
    live_tool = load_tool_models(studio(), tool_info.name)
except StudioError as error:
    st.error(str(error))
    st.stop()
if live_tool.degraded:
    deciding = " and ".join(m.method for m in live_tool.models)
    reason = " ".join(live_tool.errors.values()) or (
        f"the cross-check policy wants a second model: train one on the Train page, or set the policy to "
        f"'{deciding} only'")
    st.warning(f"Degraded mode: the {deciding} model decides alone ({reason}). Inspections are marked degraded.")

if live_tool.roi is None:
    st.warning(f"No region of interest: tool **{tool_info.name}** judges the whole camera frame, background and "
               "all. Draw the part's region in the **Region of interest** tab, or a part that fills only part of "
               "the frame may be judged wrongly.", icon=":material/crop_free:")

live_session = _session(tool_info.name)
writer = _writer(studio().settings)
main, side = st.columns([5, 2])
with side:
    station_tools = _station(live_tool)
    _controls(tool_info.name, live_session)
    _capture(live_tool, live_session, tool_info.classes)
with main:
    # Stateful tabs: only the open tab runs, and a rerun (an upload, the camera starting) keeps it open.
    camera, demo, photo, region = st.tabs(["Camera", "Demo stream", "Photo", "Region of interest"],
                                          key="tab", on_change="rerun", bind="query-params")
    if camera.open:
        with camera:
            _camera_tab(station_tools, live_session, writer)
    if demo.open:
        with demo:
            _demo_tab(station_tools, live_session, writer)
    else:
        live_session.stop_demo()
    if photo.open:
        with photo:
            _photo_tab(tool_info.name)
    if region.open:
        with region:
            _roi_tab(live_tool, live_session)
