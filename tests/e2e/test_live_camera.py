"""The camera path end to end: Chromium with a fake camera playing ELPV cells, the studio's Live page,
the WebRTC stream through the core frame processor, inspections in the database.

The fake camera plays a .y4m video written here from the committed ELPV cells (each cell slides in,
then holds still for 4 s). The test starts the stream, waits for the verdict of the overlay, checks
that continuous mode records inspections, switches the trigger to manual live (no new inspections
while parts change) and records one with the INSPECT button. A 1280 x 800 screenshot goes to
``$SCREENSHOT_DIR/live_stream.png`` (the README's) or to the test's temporary folder.

Skipped only when ``/usr/bin/chromium`` is missing (``./test.sh`` installs it).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.audit import SYSTEM
from core.live.demo import demo_frames, write_y4m
from core.live.settings import LiveConfig
from core.live.tool import save_live_config
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tool_settings import LiveOptions
from core.tools import create_tool, set_roi
from core.training import train
from storage.tables import Inspection
from tests.e2e.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ELPV,
    TIMEOUT_MS,
    TOOL,
    VIEWPORT,
    _settings,
    _streamlit,
    goto,
)

VIDEO_FPS = 5
ROI = [0.2, 0.1, 0.8, 0.9]  # where core.live.demo.place puts the part
FAKE_CAMERA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    "--autoplay-policy=no-user-gesture-required"]
IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (./test.sh installs it)")


def inspection_count(studio: Studio, station: str = "live-camera") -> int:
    with studio.transaction() as session:
        return session.query(Inspection).filter(Inspection.station == station).count()


def wait_until(condition, timeout: float, message) -> None:  # noqa: ANN001
    """Poll ``condition``; fail with ``message`` (a string, or a callable giving one) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message() if callable(message) else message)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def live_studio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("live-e2e") / "data"
    studio = open_studio(_settings(data_dir))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    assert import_path(studio, TOOL, ELPV, actor=SYSTEM).imported == 40
    train(studio, TOOL, actor=SYSTEM)
    set_roi(studio, TOOL, ROI, SYSTEM)
    # Saved live settings the page starts from: a short smoothing window, so that continuous mode
    # records each 4 s part even when a loaded 2-core machine processes only a frame or two a second.
    save_live_config(studio, TOOL, LiveConfig(options=LiveOptions(smoothing=2)), SYSTEM)
    studio.engine.dispose()
    return data_dir


@pytest.fixture(scope="module")
def camera_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cells = [sorted((ELPV / label).glob("*.png"))[i] for i in range(3) for label in ("good", "defective")]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in cells]
    path = tmp_path_factory.mktemp("camera") / "elpv_cells.y4m"
    write_y4m(path, list(demo_frames(images, hold=4 * VIDEO_FPS, slide=3, loop=False)), VIDEO_FPS)
    return path


@pytest.fixture
def page(camera_video: Path, tmp_path: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), viewport=VIEWPORT,
            args=[*CHROMIUM_ARGS, *FAKE_CAMERA_ARGS, f"--use-file-for-fake-video-capture={camera_video}"],
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.js_errors = errors
            yield page
        finally:
            context.close()


def test_live_camera_stream_in_a_real_browser(page, live_studio: Path, tmp_path: Path,  # noqa: ANN001
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # One inference thread: the server shares 2 cores with Chromium's video encoding and decoding,
    # where two competing OpenMP threads are several times slower than one (README, Live inspection).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("STUDIO_STATION", "live-camera")  # the server's station: its inspections are recorded there
    studio = open_studio(_settings(live_studio))
    with _streamlit(live_studio, tmp_path) as url:
        goto(page, f"{url}/live")
        page.locator("h1").filter(has_text=re.compile("^Live inspection$")).first.wait_for()
        page.get_by_text("No frame inspected yet.").wait_for()

        frame = page.frame_locator(IFRAME).first
        frame.get_by_role("button", name="START").click()
        frame.locator("video").first.wait_for()
        # The overlay's verdict, reported by the video thread, reaches the page's panel.
        banner = page.locator("div").filter(has_text=re.compile(r"^(PASS|FAIL|REVIEW)$")).last
        banner.wait_for(timeout=90_000)
        page.get_by_text(re.compile(r"inspection\(s\) recorded this session")).wait_for()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.wait_for_function(
            f"document.querySelector('{IFRAME}').contentDocument.querySelector('video').videoWidth === 640")

        # Continuous mode: one inspection per part lands in the database.
        main = page.locator('[data-testid="stMain"]')
        wait_until(lambda: inspection_count(studio) >= 1, 120,
                   lambda: f"no inspection recorded in continuous mode; page: {main.inner_text()[:1500]}")

        # Switch the trigger live to manual: no inspection while parts pass, one per INSPECT.
        page.get_by_text("Manual (Inspect button)").click()
        inspect = page.get_by_role("button", name="INSPECT")
        inspect.wait_for()
        page.wait_for_timeout(2000)  # a frame already in the processor may still record
        before = inspection_count(studio)
        page.wait_for_timeout(6000)  # more than one part passes by in this time
        assert inspection_count(studio) == before
        inspect.click()
        wait_until(lambda: inspection_count(studio) == before + 1, 60, "INSPECT recorded nothing")
        page.wait_for_timeout(3000)
        assert inspection_count(studio) == before + 1

        page.mouse.move(5, 795)  # no tooltip over the screenshot
        page.wait_for_timeout(1500)
        folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "live_stream.png"))
        assert page.js_errors == [], page.js_errors

        frame.get_by_role("button", name="STOP").click()
    studio.engine.dispose()
