"""The Live page with AppTest on a really trained studio. The WebRTC component is replaced by a
recorder (tests/pages/conftest.py); the page's own video callback is called with real frames."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from inspect import getclosurevars
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from streamlit_webrtc import WebRtcMode

import storage.db
from core.audit import SYSTEM
from core.config import rtc_configuration
from core.live.demo import place
from core.live.overlay import COLOURS
from core.roi import roi_pixels
from core.studio import Studio
from core.tools import get_roi, get_tool, set_roi
from storage.tables import Inspection
from tests.pages.conftest import StreamerRecorder
from tests.pages.test_pages import (  # noqa: E402,F401
    DEFECTIVE_CELLS,
    GOOD_CELLS,
    TOOL,
    button,
    metrics,
    open_page,
    texts,
    trained_studio,
    trained_template,
)

ROI = [0.2, 0.1, 0.8, 0.9]  # where core.live.demo.place puts the part in a 640 x 480 frame


@pytest.fixture
def studio(trained_studio: Studio) -> Iterator[Studio]:
    """The trained studio with the tool's ROI around the part."""
    set_roi(trained_studio, TOOL, ROI, SYSTEM)
    yield trained_studio


def frame_of(path: Path) -> av.VideoFrame:
    rgb = place(np.asarray(Image.open(path).convert("RGB")))
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def send(webrtc: StreamerRecorder, path: Path) -> np.ndarray:
    """A camera frame through the page's own video callback, twice: the callback returns at once with the
    newest verdicts while its inference worker judges the frame, so the second copy shows this frame's
    verdict. Returns that annotated frame once the worker is idle again."""
    callback = webrtc.calls[-1]["video_frame_callback"]
    worker = getclosurevars(callback).nonlocals["worker"]
    callback(frame_of(path))
    wait_for(worker.idle)
    out = callback(frame_of(path)).to_ndarray(format="rgb24")
    wait_for(worker.idle)
    return out


def live_banner(at: AppTest) -> str:
    html = [m.value for m in at.markdown if "font-size:3.2rem" in m.value]
    assert len(html) == 1, texts(at.markdown)
    return html[0]


def inspections(studio: Studio) -> list[Inspection]:
    with studio.transaction() as session:
        return list(session.query(Inspection).order_by(Inspection.id))


def wait_for(condition, timeout: float = 15.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_camera_stream_is_configured_for_an_offline_lan(studio: Studio, webrtc: StreamerRecorder) -> None:
    at = open_page("live")
    call = webrtc.calls[-1]
    assert call["rtc_configuration"] == rtc_configuration() == {"iceServers": []}
    assert call["mode"] == WebRtcMode.SENDRECV and call["async_processing"] is True
    assert call["media_stream_constraints"]["audio"] is False
    assert "permission denied" in call["translations"]["device_access_denied"].lower()
    assert "HTTPS" in call["translations"]["media_api_not_available"]
    assert "No frame inspected yet." in texts(at.caption)


def test_a_tool_without_roi_says_the_whole_frame_is_judged(trained_studio: Studio,
                                                          webrtc: StreamerRecorder) -> None:
    set_roi(trained_studio, TOOL, None, SYSTEM)
    at = open_page("live")
    assert not at.exception
    notices = [w.value for w in at.warning if "No region of interest" in w.value]
    assert len(notices) == 1 and "whole camera frame" in notices[0]
    set_roi(trained_studio, TOOL, ROI, SYSTEM)
    at.run()
    assert not [w.value for w in at.warning if "No region of interest" in w.value]


def test_callback_overlays_the_verdict_and_the_page_shows_it(studio: Studio, webrtc: StreamerRecorder) -> None:
    at = open_page("live")
    out = send(webrtc, DEFECTIVE_CELLS[0])
    assert out.shape == (480, 640, 3)
    assert tuple(int(v) for v in out[5, 5]) == COLOURS["fail"]
    at.run()
    assert not at.exception
    assert ">FAIL</div>" in live_banner(at)
    assert float(metrics(at)["Live score"]) > 0.5


def test_settings_switched_on_the_page_reach_the_video_thread(studio: Studio, webrtc: StreamerRecorder) -> None:
    at = open_page("live")
    at.slider(key="live-smoothing").set_value(1)
    at.toggle(key="live-heatmap").set_value(False).run()
    plain = send(webrtc, GOOD_CELLS[0])
    source = frame_of(GOOD_CELLS[0]).to_ndarray(format="rgb24")
    assert np.array_equal(plain[120:400, 200:440], source[120:400, 200:440])  # no heatmap over the part
    assert tuple(int(v) for v in plain[5, 5]) == COLOURS["pass"]

    at.toggle(key="live-heatmap").set_value(True)
    at.slider(key="live-threshold-classifier").set_value(0.0).run()  # no part passes now: a good cell goes to review
    heated = send(webrtc, GOOD_CELLS[0])
    assert not np.array_equal(heated[120:400, 200:440], source[120:400, 200:440])
    assert tuple(int(v) for v in heated[5, 5]) == COLOURS["review"]


def test_manual_trigger_records_on_inspect(studio: Studio, webrtc: StreamerRecorder) -> None:
    at = open_page("live")
    at.radio(key="live-trigger").set_value("manual").run()
    for _ in range(3):
        send(webrtc, DEFECTIVE_CELLS[1])
    time.sleep(0.3)
    assert inspections(studio) == []  # nothing without the button
    button(at, "INSPECT").click().run()
    assert not at.exception
    send(webrtc, DEFECTIVE_CELLS[1])
    wait_for(lambda: len(inspections(studio)) == 1)
    (row,) = inspections(studio)
    assert row.station == studio.settings.station and row.decision in ("fail", "review") and row.image_key


def test_save_to_tool_keeps_the_settings(studio: Studio, webrtc: StreamerRecorder) -> None:
    at = open_page("live")
    at.slider(key="live-threshold-classifier").set_value(0.7)
    at.slider(key="live-smoothing").set_value(7)
    at.toggle(key="live-tta").set_value(True).run()
    button(at, "Save to tool").click().run()
    assert not at.exception
    settings = get_tool(studio, TOOL).settings
    assert (settings["thresholds"]["classifier"] == 0.7 and settings["live"]["smoothing"] == 7
            and settings["live"]["tta"] is True)
    fresh = open_page("live")  # a new session starts from the saved settings
    assert fresh.slider(key="live-threshold-classifier").value == 0.7 and fresh.slider(key="live-smoothing").value == 7


def test_roi_drawn_is_stored_on_the_tool_and_used_by_the_stream(studio: Studio, webrtc: StreamerRecorder) -> None:
    at = open_page("live", tab="Region of interest")
    assert get_roi(studio, TOOL) == ROI
    at.slider(key=f"roi-x-{TOOL}").set_value((0.25, 0.75))
    at.slider(key=f"roi-y-{TOOL}").set_value((0.1, 0.9)).run()
    button(at, "Save region to tool").click().run()
    assert not at.exception
    assert get_roi(studio, TOOL) == [0.25, 0.1, 0.75, 0.9]
    at.session_state["tab"] = "Camera"  # back to the stream
    at.run()
    out = send(webrtc, DEFECTIVE_CELLS[2])
    x0, y0, x1, y1 = roi_pixels([0.25, 0.1, 0.75, 0.9], 640, 480)
    colours = set(COLOURS.values())
    assert tuple(int(v) for v in out[(y0 + y1) // 2, x0 + 1]) in colours  # the box is drawn on the new ROI
    assert tuple(int(v) for v in out[(y0 + y1) // 2, 129]) not in colours  # and no longer on the old one
    at.session_state["tab"] = "Region of interest"
    at.run()
    button(at, "Use the whole frame").click().run()
    assert get_roi(studio, TOOL) is None


def test_capture_adds_the_roi_of_the_current_frame_as_a_sample(studio: Studio, webrtc: StreamerRecorder) -> None:
    from core.samples import class_counts
    at = open_page("live")
    button(at, "Capture").click().run()
    assert "No frame yet: start the camera or the demo stream." in texts(at.warning)
    send(webrtc, GOOD_CELLS[9])
    at.selectbox(key="live-capture-label").select("defective")
    button(at, "Capture").click().run()
    assert texts(at.success) == ["Added 1 sample(s) as 'defective'"]
    assert class_counts(studio, TOOL) == {"good": 20, "defective": 21}


def test_demo_stream_plays_without_a_camera(studio: Studio) -> None:
    at = open_page("live", tab="Demo stream")
    at.toggle(key="live-demo-play").set_value(True).run()
    assert not at.exception
    assert any(">PASS</div>" in m.value or ">FAIL</div>" in m.value or ">REVIEW</div>" in m.value
               for m in at.markdown if "font-size:3.2rem" in m.value)
    assert inspections(studio) == []  # demo inspections are recorded only when asked


def test_unplugged_camera_is_reported(studio: Studio, webrtc: StreamerRecorder) -> None:
    at = open_page("live")
    send(webrtc, GOOD_CELLS[1])
    webrtc.playing = True
    time.sleep(3.2)
    at.run()
    assert any("is it unplugged?" in e.value for e in at.error), texts(at.error)


def test_database_unavailable_keeps_inspections_and_writes_them_later(
        trained_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webrtc: StreamerRecorder) -> None:
    import shutil

    from tests.pages.test_pages import _use
    monkeypatch.setattr(storage.db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    data_dir = tmp_path / "data"
    shutil.copytree(trained_template, data_dir)
    studio = _use(data_dir, monkeypatch)
    set_roi(studio, TOOL, ROI, SYSTEM)
    at = open_page("live")
    at.radio(key="live-trigger").set_value("manual").run()
    blocker = sqlite3.connect(data_dir / "studio.db", isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        button(at, "INSPECT").click().run()
        send(webrtc, DEFECTIVE_CELLS[3])
        time.sleep(1.0)
        at.run()
        assert any("Database unavailable: 1 inspection(s) waiting" in w.value for w in at.warning), texts(at.warning)
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    wait_for(lambda: len(inspections(studio)) == 1)
    studio.engine.dispose()


def test_missing_model_files_give_a_clear_message(studio: Studio, webrtc: StreamerRecorder) -> None:
    from core.inspect import models
    for path in studio.settings.models_dir.rglob("weights.safetensors"):
        path.unlink()
    models.CACHE = models.ModelCache()  # a fresh process: nothing loaded yet
    at = open_page("live")
    assert any("cannot be loaded" in e.value and "Retrain" in e.value for e in at.error), texts(at.error)
    assert not [c for c in webrtc.calls if c["key"].startswith("live-camera")]  # no stream without a model


def test_a_photo_is_recorded_once_however_often_the_page_reruns(studio: Studio) -> None:
    at = open_page("live", tab="Photo")
    at.file_uploader[0].set_value((DEFECTIVE_CELLS[4].name, DEFECTIVE_CELLS[4].read_bytes(), "image/png")).run()
    at.run()  # e.g. the camera widget asked for a rerun
    assert not at.exception
    assert len(inspections(studio)) == 1
    assert any(f"inspection #{inspections(studio)[0].id}" in c.value for c in at.caption), texts(at.caption)


def test_a_second_tool_inspects_the_same_frame_with_its_own_threshold(studio: Studio,
                                                                        webrtc: StreamerRecorder) -> None:
    from core.samples import import_path
    from core.tool_settings import change_settings
    from core.tools import create_tool
    from core.training import train
    from pages.common import TOOL_KEY
    from tests.pages.test_pages import ELPV
    create_tool(studio, "busbar", "good,defective", actor=SYSTEM)
    import_path(studio, "busbar", ELPV, actor=SYSTEM)
    train(studio, "busbar", actor=SYSTEM)
    set_roi(studio, "busbar", [0.0, 0.0, 0.5, 1.0], SYSTEM)
    # its own saved threshold: fails anything
    change_settings(studio, "busbar", SYSTEM, {"threshold.classifier": 0.0, "review_band.classifier": 0.0})
    at = open_page("live")
    at.session_state[TOOL_KEY] = TOOL  # the sidebar's tool (the first by name would be busbar)
    at.run()
    assert at.multiselect(key="live-station-tools").options == ["busbar"]
    at.multiselect(key="live-station-tools").select("busbar").run()
    assert not at.exception
    out = send(webrtc, GOOD_CELLS[0])
    assert tuple(int(v) for v in out[240, 1]) == COLOURS["fail"]  # the second tool's ROI box, in its verdict's colour
    at.run()
    assert float(metrics(at)["Live score"]) < 0.5  # the page's tool passes the good cell (live threshold 0.5)
    assert ">FAIL</div>" in live_banner(at)  # but the second tool fails it: the frame fails
    assert any(c.value.startswith("**busbar**: FAIL") for c in at.caption), texts(at.caption)
