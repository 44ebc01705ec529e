"""Smoke test in a real browser: ``streamlit run app.py`` on a real studio, driven by Chromium.

The studio is built with the core services (a tool, the 40 committed ELPV cells, a trained model,
a few recorded inspections, two of them waiting for review). With ``SCREENSHOT_DIR`` set, the
studio is the demo project instead (``python -m core demo build``, about 40 s) and a 1280 x 800
screenshot of each page is saved there as ``<page>.png`` (the README's screenshots).

Skipped only when ``/usr/bin/chromium`` is missing (``./test.sh`` installs it).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from core.analytics import daily_stats, default_range
from core.audit import SYSTEM
from core.auth.accounts import create_user, list_users
from core.auth.roles import Role
from core.config import Settings
from core.images import decode_image, encode_png
from core.inspect.decision import Verdict
from core.inspect.recorder import RecordContext
from core.inspect.service import predict_image
from core.reviews import review_queue
from core.samples import class_counts, import_path
from core.studio import Studio, open_studio
from core.tools import create_tool
from core.training import train
from models.profiles import DEFAULT_PROFILE
from tests.inspections import record

ROOT = Path(__file__).resolve().parents[2]
ELPV = ROOT / "tests" / "data" / "elpv"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOOL = "solar-cell"  # also the demo project's tool
VIEWPORT = {"width": 1280, "height": 800}
TITLES = {"capture": "Capture", "dataset": "Dataset", "train": "Train", "live": "Live inspection",
          "review": "Review queue", "analytics": "Analytics", "models": "Model versions", "line": "Line",
          "fleet": "Fleet", "api-tokens": "API tokens", "admin": "Users"}
NAV_LABELS = {"capture": "Capture", "dataset": "Dataset", "train": "Train", "live": "Live", "review": "Review",
              "analytics": "Analytics", "models": "Models", "line": "Line", "fleet": "Fleet",
              "api-tokens": "API tokens", "admin": "Users"}
E2E_USER, E2E_PASSWORD = "e2e-admin", "e2e-password-7"  # the admin account the browser signs in with
TIMEOUT_MS = 60_000
CAMERA_IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'  # the camera component

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (./test.sh installs it)")


def _settings(data_dir: Path) -> Settings:
    data_dir = data_dir.resolve()
    return Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}")


def _build_with_services(data_dir: Path) -> None:
    studio = open_studio(_settings(data_dir))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    assert import_path(studio, TOOL, ELPV, actor=SYSTEM).imported == 40
    train(studio, TOOL, actor=SYSTEM)
    cells = sorted((ELPV / "good").glob("*.png"))[:3] + sorted((ELPV / "defective").glob("*.png"))[:3]
    for path in cells:
        predict_image(studio, TOOL, path.name, path.read_bytes(), context=RecordContext("e2e"), actor=SYSTEM)
    for path in sorted((ELPV / "defective").glob("*.png"))[3:5]:
        png = encode_png(decode_image(path.read_bytes()).rgb)
        record(studio, TOOL, Verdict("review", "defective", 0.55), {"good": 0.45, "defective": 0.55}, png,
               station="e2e", ms=25.0)
    studio.engine.dispose()


def _build_demo(data_dir: Path) -> None:
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "core", "demo", "build"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def studio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    if os.environ.get("SCREENSHOT_DIR"):
        _build_demo(data_dir)
    else:
        _build_with_services(data_dir)
    return data_dir


def _add_e2e_account(data_dir: Path) -> None:
    """The admin account the browser signs in with (``goto``), once per studio."""
    studio = open_studio(_settings(data_dir))
    try:
        if E2E_USER not in {u.username for u in list_users(studio, SYSTEM)}:
            create_user(studio, SYSTEM, E2E_USER, E2E_PASSWORD, Role.ADMIN, "E2E Admin")
    finally:
        studio.engine.dispose()


def goto(page, url: str) -> None:  # noqa: ANN001 - playwright Page
    """Open ``url`` and sign in: a fresh browser session starts on the login page, whatever the URL; once
    signed in, the page of that URL opens."""
    page.goto(url)
    page.locator("h1").filter(has_text=re.compile("^Sign in$")).first.wait_for()
    page.get_by_role("textbox", name="Username", exact=True).fill(E2E_USER)
    page.get_by_role("textbox", name="Password", exact=True).fill(E2E_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator("h1").filter(has_text=re.compile("^Sign in$")).first.wait_for(state="detached")


@contextmanager
def _streamlit(data_dir: Path, log_dir: Path) -> Iterator[str]:
    """The studio as ``run.sh`` serves it, on a free port, with login on and an admin account for the
    browser (``goto`` signs in); yields its URL and stops that process at the end."""
    _add_e2e_account(data_dir)
    port = _free_port()
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    env.pop("STUDIO_AUTH", None)  # login on, as shipped
    log_path = log_dir / "streamlit.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "scripts/serve.py", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"streamlit exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy after 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        print(log_path.read_text()[-2000:])


@pytest.fixture(scope="module")
def server(studio_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _streamlit(studio_dir, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _new_page(browser):  # noqa: ANN001, ANN202 - playwright Browser -> Page
    """A 1280 x 800 page that records uncaught JavaScript errors in ``page.js_errors``."""
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors
    return page


def _settle(page, title: str) -> None:  # noqa: ANN001 - playwright Page
    """Wait until the page titled ``title`` has rendered and its script run has finished."""
    page.locator("h1").filter(has_text=re.compile(f"^{re.escape(title)}$")).first.wait_for()
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")


def _assert_no_errors(page, name: str) -> None:  # noqa: ANN001
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: {exceptions.first.inner_text()}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
    assert page.js_errors == [], f"{name}: JavaScript errors {page.js_errors}"


def _screenshot(page, name: str) -> None:  # noqa: ANN001
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(800)  # let charts finish drawing
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def _open(page, name: str) -> None:  # noqa: ANN001
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_role("link", name=NAV_LABELS[name], exact=True).click()
    _settle(page, TITLES[name])
    assert urlparse(page.url).path.strip("/") == ("" if name == "capture" else name)  # capture is the default
    _assert_no_errors(page, name)


def _wait_visible(page, locator, what: str) -> None:  # noqa: ANN001
    """``locator.wait_for()``, failing with what the page shows instead (which tab, is it running, is the
    element there but hidden) rather than a bare timeout."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        locator.wait_for()
    except PlaywrightTimeout:
        state = page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
        tabs = page.get_by_role("tab").all()
        selected = [t.inner_text() for t in tabs if t.get_attribute("aria-selected") == "true"]
        main = page.locator('[data-testid="stMain"]').inner_text()[:1500]
        pytest.fail(f"{what} not visible: {locator.count()} attached; script {state}; tab {selected}; "
                    f"url {page.url}; page: {main!r}")


def _metric(page, label: str):  # noqa: ANN001, ANN202 - a Locator of the metric's value
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(f"^{re.escape(label)}$")))
    return metric.locator('[data-testid="stMetricValue"]')


def test_every_page_in_a_real_browser(browser, server: str, studio_dir: Path) -> None:  # noqa: ANN001
    page = _new_page(browser)
    studio: Studio = open_studio(_settings(studio_dir))

    # Capture, the default page, at the root URL.
    goto(page, server)
    _settle(page, "Capture")
    _assert_no_errors(page, "capture")
    counts = class_counts(studio, TOOL)
    for name, count in counts.items():
        assert _metric(page, name).inner_text() == f"{count} / 20"
    uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    uploader.first.wait_for(state="attached")  # the form can render a moment after the metrics
    assert uploader.count() == 1
    _screenshot(page, "capture")

    _open(page, "train")
    page.get_by_role("heading", name=re.compile(rf"^Active model: v\d+ \({DEFAULT_PROFILE}\)")).wait_for()
    assert re.fullmatch(r"\d+\.\d%", _metric(page, "Cross-validated balanced accuracy").inner_text())
    page.get_by_role("button", name="Train", exact=True).wait_for()
    _screenshot(page, "train")

    _open(page, "live")
    # Every step waits for what the page really shows, never for a time: under load each script run
    # takes seconds and more runs overlap. The camera component reruns the page once its iframe has
    # mounted (its first value), late under load: wait for it and the page to be idle. The URL changes
    # at the click on the Photo tab, before the server has run that tab: wait for the tab's own content
    # and the run's end before uploading, then for the uploader to hold the file, then for the verdict.
    page.frame_locator(CAMERA_IFRAME).first.get_by_role("button", name="START").wait_for()
    _settle(page, "Live inspection")
    page.get_by_role("tab", name="Photo").click()  # the camera tab comes first; the URL remembers the tab
    page.wait_for_url(re.compile(r"/live\?(.*&)?tab=Photo(&.*)?$"))  # beside the tab session parameter
    page.get_by_text("Upload a photo to inspect it.").wait_for()
    _settle(page, "Live inspection")
    start, end = default_range(1)
    before = int(daily_stats(studio, TOOL, start, end)["inspections"].sum())
    cell = sorted((ELPV / "defective").glob("*.png"))[0]
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(cell))
    page.locator('[data-testid="stFileChipName"]', has_text=cell.name).wait_for()  # the uploader took the file
    banner = page.get_by_text(re.compile(r"^(PASS|FAIL|REVIEW)$"))
    _wait_visible(page, banner, "the Photo tab's verdict banner")
    _settle(page, "Live inspection")
    _assert_no_errors(page, "live after upload")
    assert _metric(page, "Defect score").inner_text() != ""
    assert int(daily_stats(studio, TOOL, start, end)["inspections"].sum()) == before + 1
    if not os.environ.get("SCREENSHOT_DIR"):  # the model was trained on this very cell
        assert banner.inner_text() == "FAIL"
    _screenshot(page, "live")

    _open(page, "review")
    _, waiting = review_queue(studio, TOOL)
    if waiting:
        page.get_by_text(f"{waiting} inspection(s) waiting · ").wait_for()  # then the count per reason
        page.get_by_role("button", name=re.compile(r"^Good\b")).wait_for()  # the name ends with its shortcut
    else:
        page.get_by_text("Nothing to review: every flagged inspection has a verdict.").wait_for()
    if not os.environ.get("SCREENSHOT_DIR"):  # the two recorded reviews + what the model sent to review
        cells = sorted((ELPV / "good").glob("*.png"))[:3] + sorted((ELPV / "defective").glob("*.png"))[:3]
        sent = sum(predict_image(studio, TOOL, p.name, p.read_bytes(), record=False,
            actor=SYSTEM).inspection.decision == "review"
                   for p in cells)
        assert waiting == 2 + sent
    _screenshot(page, "review")
    if waiting:
        page.get_by_role("button", name=re.compile(r"^Good\b")).click()
        left = f"{waiting - 1} inspection(s) waiting · " if waiting > 1 else \
            "Nothing to review: every flagged inspection has a verdict."
        page.get_by_text(left).wait_for()
        _settle(page, "Review queue")
        _assert_no_errors(page, "review after a verdict")
        assert review_queue(studio, TOOL)[1] == waiting - 1

    _open(page, "analytics")
    start, end = default_range(14)
    total = int(daily_stats(studio, TOOL, start, end)["inspections"].sum())
    assert total > 0
    assert _metric(page, "Inspections").inner_text() == f"{total:,}"
    _metric(page, "Defect rate").wait_for()
    _screenshot(page, "analytics")
    grid = page.locator('[data-testid="stDataFrame"]').first  # recent inspections, newest first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 16, box["y"] + 35 + 18)  # the selection box of the first row
    page.get_by_text(re.compile(r"^Inspection #\d+")).first.wait_for()
    _settle(page, "Analytics")
    _assert_no_errors(page, "analytics after selecting an inspection")

    _open(page, "api-tokens")
    page.get_by_role("button", name="Create token").wait_for()

    _open(page, "admin")
    page.get_by_role("button", name="Add user").wait_for()
    _screenshot(page, "users")

    _open(page, "capture")  # back through the sidebar link as well
    studio.engine.dispose()


def test_a_bookmarked_page_url_works_on_a_fresh_server(browser, studio_dir: Path,  # noqa: ANN001
                                                       tmp_path: Path) -> None:
    """An operator's tablet bookmarked on /live, opened after the studio (re)started."""
    with _streamlit(studio_dir, tmp_path) as url:
        page = _new_page(browser)
        goto(page, f"{url}/live?tab=Photo")  # the Photo tab, bookmarked: it opens after signing in
        _settle(page, TITLES["live"])
        _assert_no_errors(page, "live")
        sidebar_links = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
        assert [text.split("\n")[-1] for text in sidebar_links] == list(NAV_LABELS.values())
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').wait_for(state="attached")
        assert page.get_by_role("tab", name="Photo").get_attribute("aria-selected") == "true"
