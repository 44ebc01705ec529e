"""The Capture page's camera in a real browser: Chromium's fake camera plays a clip of a real ELPV
cell, the page's WebRTC widget streams it to ``streamlit run``, a click on Snapshot stores the frame,
and the new sample is found in the database: the tool's ROI, cropped from the camera frame, and
still the same cell after VP8 compression. Then the Dataset page shows it.

With ``SCREENSHOT_DIR`` set, 1280 x 800 screenshots ``capture.png`` and ``dataset.png`` are saved there.
Skipped only when ``/usr/bin/chromium`` is missing (``./test.sh`` installs it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from core.audit import SYSTEM
from core.images import decode_image
from core.samples import import_path
from core.studio import open_studio
from core.tools import create_tool
from storage.tables import Sample, Tool
from tests.e2e.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ELPV,
    TIMEOUT_MS,
    VIEWPORT,
    _assert_no_errors,
    _settings,
    _settle,
    _streamlit,
    goto,
)

TOOL = "solar-cell"
WIDTH, HEIGHT, SIDE = 640, 480, 480  # camera frame; the cell fills a centred 480 x 480 square
ROI = [80 / WIDTH, 0.0, 560 / WIDTH, 1.0]  # exactly that square
CAMERA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
WEBRTC_FRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (./test.sh installs it)")


def cell_square() -> np.ndarray:
    """The real cell the fake camera shows, as ``(480, 480)`` gray pixels."""
    cell = decode_image(sorted((ELPV / "good").glob("*.png"))[0].read_bytes()).rgb[:, :, 0]
    return np.asarray(Image.fromarray(cell).resize((SIDE, SIDE), Image.BILINEAR))


def write_y4m(path: Path, frames: int = 30) -> None:
    """A 640 x 480 YUV4MPEG2 clip (what Chromium's fake camera plays): the cell on a mid-gray frame."""
    luma = np.full((HEIGHT, WIDTH), 96, np.uint8)
    left = (WIDTH - SIDE) // 2
    luma[:, left : left + SIDE] = cell_square()
    chroma = np.full((HEIGHT // 2, WIDTH // 2), 128, np.uint8).tobytes()
    frame = luma.tobytes() + chroma + chroma
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + frame)


@pytest.fixture(scope="module")
def studio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = (tmp_path_factory.mktemp("camera") / "data").resolve()
    studio = open_studio(_settings(data_dir))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    assert import_path(studio, TOOL, ELPV, actor=SYSTEM).imported == 40
    with studio.transaction() as session:
        session.scalar(select(Tool).where(Tool.name == TOOL)).roi = ROI
    studio.engine.dispose()
    return data_dir


@pytest.fixture(scope="module")
def camera_page(studio_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    from playwright.sync_api import sync_playwright

    work = tmp_path_factory.mktemp("chromium")
    clip = work / "cell.y4m"
    write_y4m(clip)
    with _streamlit(studio_dir, work) as url, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(work / "profile"), executable_path=str(CHROMIUM), viewport=VIEWPORT,
            args=[*CHROMIUM_ARGS, *CAMERA_ARGS, f"--use-file-for-fake-video-capture={clip}"])
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.js_errors = []
            page.on("pageerror", lambda error: page.js_errors.append(str(error)))
            yield page, url
        finally:
            context.close()


def capture_samples(studio_dir: Path) -> list[Sample]:
    studio = open_studio(_settings(studio_dir))
    try:
        with studio.transaction() as session:
            return list(session.scalars(select(Sample).where(Sample.source == "capture").order_by(Sample.id)))
    finally:
        studio.engine.dispose()


def test_snapshot_from_the_fake_camera_is_stored(camera_page: tuple[object, str], studio_dir: Path) -> None:
    page, url = camera_page
    goto(page, url)  # Capture is the default page, at the root URL
    _settle(page, "Capture")
    _assert_no_errors(page, "capture")
    assert capture_samples(studio_dir) == []

    camera = page.frame_locator(WEBRTC_FRAME)
    camera.get_by_role("button", name="START").click()
    camera.get_by_role("button", name="STOP").wait_for()
    video = camera.locator("video")
    video.wait_for()
    # the preview plays only once frames have gone through the page's video callback and back
    video.evaluate("v => new Promise(resolve => { const check = () => v.videoWidth > 0 && v.currentTime > 0.5"
                   " ? resolve() : setTimeout(check, 100); check(); })")
    page.get_by_role("button", name="Snapshot as 'good'").click()
    page.get_by_text("Added 1 snapshot(s) as 'good'").wait_for()
    _settle(page, "Capture")
    _assert_no_errors(page, "capture after a snapshot")
    assert page.locator('[data-testid="stMetricValue"]').first.inner_text() == "21 / 20"

    [sample] = capture_samples(studio_dir)
    assert (sample.label, sample.width, sample.height) == ("good", SIDE, SIDE)  # the ROI of a 640 x 480 frame
    studio = open_studio(_settings(studio_dir))
    stored = decode_image(studio.images.read(sample.image_key)).rgb[:, :, 0].astype(float)
    studio.engine.dispose()
    expected = cell_square().astype(float)
    correlation = np.corrcoef(stored[8:-8, 8:-8].ravel(), expected[8:-8, 8:-8].ravel())[0, 1]
    assert correlation > 0.9, correlation  # the very cell the camera showed, through VP8 and back
    if os.environ.get("SCREENSHOT_DIR"):
        Path(os.environ["SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(500)
        page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "capture.png"))

    goto(page, f"{url}/dataset")
    _settle(page, "Dataset")
    _assert_no_errors(page, "dataset")
    page.get_by_text(re.compile(r"^41 sample\(s\) · page 1 of 1")).wait_for()
    page.get_by_text(f"#{sample.id} good").wait_for()  # the snapshot is the newest cell of the grid
    page.locator('[data-testid="stMultiSelect"]').nth(2).wait_for()  # the filters can render after the grid
    assert page.locator('[data-testid="stMultiSelect"]').count() == 3  # label, source and split filters
    assert page.get_by_role("checkbox").count() == 41
    if os.environ.get("SCREENSHOT_DIR"):
        page.get_by_text("Captured between").wait_for()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "dataset.png"))
