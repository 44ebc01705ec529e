"""Live in a real browser: the studio's Live page fed by Chromium's fake camera, at the camera's pace.

Builds the demo project in a temporary data directory (``python -m core demo build``, the ROI where
the demo stream places the cell) plus a second tool trained on the 40 committed ELPV cells with the
same ROI, writes a 30 fps 640 x 480 y4m of ELPV cells placed as ``core.live.demo.place`` places them
(each slides in, then holds 2 s), starts the studio (``scripts/serve.py`` on a free port) and
headless Chromium with ``--use-file-for-fake-video-capture``, opens the Live page, presses START in
the WebRTC iframe and, for ``--seconds``, reads every 2 s what the page shows (``Frames / s``: video
frames returned to the browser; verdicts / s and the verdict latency from the caption) and what the
browser's WebRTC stats say (frames per second decoded of the returned video).

The page's latency is the verdict's: from the frame's arrival at the server to its verdict, the wait for
the inference thread included; it leaves out the camera-to-server and server-to-screen legs. Those are
measured apart, in the browser, on its one clock: every camera frame carries its number (``stamp``),
read as the frame reaches the page and again as the returned frame is displayed (``video_latency_ms``:
capture to display of the returned video). A verdict is drawn on the first frame that reaches the server
after it, so it is on screen about ``video_latency_ms`` after it is made (plus up to one frame interval).
That clock runs only with ``--video-latency``: it reads every camera and returned frame in Chromium (about 15 %
of a core more) and in 2 of 4 windows with it the returned stream stopped (session 9), 0 of 4 without.
The server process's CPU is split per thread (psutil thread CPU times over the window); Chromium's total
is beside it.
Then the second tool is added on the same frame ("Also inspect on this frame") and the window repeats
(``fps_two_tools``). Before the browser run, the server's per-frame stages are timed in this process
on the same frames with the same libraries: VP8 decode (aiortc's decoder), YUV -> RGB, inference
(the processor's judge, on the studio's torch threads and model threads), overlay, RGB -> YUV, VP8 encode
(aiortc's encoder), and each of the tool's models alone on the same crop. ``--https ADDRESS`` serves the
studio over HTTPS on a LAN address of this machine (a certificate from ``scripts/make_cert.sh``, accepted
by the browser as a tablet accepts it): the tablet's path, with the browser on the studio's machine.

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/live_browser.py [--seconds 60] [--threads 1] [--https IP]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.audit import SYSTEM  # noqa: E402
from core.auth.accounts import create_user, list_users  # noqa: E402
from core.auth.roles import Role  # noqa: E402
from core.config import Settings  # noqa: E402
from core.demo import DEMO_TOOL  # noqa: E402
from core.inspect.models import load_tool_models  # noqa: E402
from core.live.demo import demo_frames, write_y4m  # noqa: E402
from core.live.processor import FrameProcessor  # noqa: E402
from core.live.settings import LiveSettings  # noqa: E402
from core.live.tool import live_config  # noqa: E402
from core.samples import import_path  # noqa: E402
from core.studio import open_studio  # noqa: E402
from core.tools import create_tool, get_roi, set_roi  # noqa: E402
from core.training import train  # noqa: E402

ELPV = ROOT / "tests" / "data" / "elpv"
OPERATOR, OPERATOR_PASSWORD = "bench-operator", "bench-operator-pw-1"  # who signs in on the Live page
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required"]
IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'
SECOND_TOOL = "solar-cell-2"  # sorts after the demo tool: the page opens the demo tool
CAMERA_FPS = 30
STAGES = ("decode", "to_rgb", "inference", "overlay", "from_rgb", "encode")
# Every RTCPeerConnection the page makes, kept where the bench can ask it for its stats.
KEEP_PEER_CONNECTIONS = """
(() => { const Native = window.RTCPeerConnection; if (!Native) return; window.__pcs = [];
  window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Native.prototype; })();
"""
# Each camera frame carries its number (mod 4096) as 12 black / white 16 px squares left of the ROI, where
# the overlay draws nothing. The page reads the number of every camera frame as it reaches the page
# (a clone of the camera track through MediaStreamTrackProcessor) and of every returned frame as it is
# displayed (requestVideoFrameCallback): capture-to-display of the video, on the browser's one clock.
CODE_BITS, CODE_SQUARE, CODE_AT = 12, 16, (16, 208)
FRAME_CLOCK = """
(() => { const md = navigator.mediaDevices; if (!md || !window.MediaStreamTrackProcessor) return;
  const [X, Y, S, BITS] = [ARGS], W = S * BITS / 2, H = 2 * S;
  const code = (ctx) => { const d = ctx.getImageData(0, 0, W, H).data; let n = 0;
    for (let b = 0; b < BITS; b++) {
      const x = (b % (BITS / 2)) * S + S / 2, y = Math.floor(b / (BITS / 2)) * S + S / 2;
      if (d[(y * W + x) * 4] > 127) n |= 1 << b; } return n; };
  window.__captured = new Map(); window.__shown = [];
  const native = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => { const stream = await native(constraints);
    const track = stream.getVideoTracks()[0];
    if (track) { const reader = new MediaStreamTrackProcessor({track: track.clone()}).readable.getReader();
      const ctx = new OffscreenCanvas(W, H).getContext('2d', {willReadFrequently: true});
      (async () => { for (;;) { const {value, done} = await reader.read(); if (done) return;
        const t = performance.now(); ctx.drawImage(value, X, Y, W, H, 0, 0, W, H); value.close();
        window.__captured.set(code(ctx), t); } })(); }
    return stream; };
  window.__watch = (video) => { if (video.__watched) return; video.__watched = true;
    const canvas = document.createElement('canvas'); canvas.width = W; canvas.height = H;
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    const step = (now, meta) => { ctx.drawImage(video, X, Y, W, H, 0, 0, W, H);
      const t = window.__captured.get(code(ctx));
      if (t !== undefined && meta.expectedDisplayTime >= t) window.__shown.push(meta.expectedDisplayTime - t);
      video.requestVideoFrameCallback(step); };
    video.requestVideoFrameCallback(step); };
})();
""".replace("ARGS", f"{CODE_AT[0]}, {CODE_AT[1]}, {CODE_SQUARE}, {CODE_BITS}")
TAKE_SHOWN = "() => { const v = window.__shown || []; window.__shown = []; return v; }"
RECEIVED_VIDEO = """
async () => { let best = null;
  for (const pc of (window.__pcs || [])) { const stats = await pc.getStats();
    stats.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') best = s; }); }
  return best && {frames: best.framesDecoded, t: best.timestamp}; }
"""


def settings_of(data_dir: Path) -> Settings:
    return Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}")


def build(data_dir: Path) -> None:
    """The demo project, plus a second trained tool with the demo's ROI."""
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "core", "demo", "build"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    studio = open_studio(settings_of(data_dir))
    create_tool(studio, SECOND_TOOL, "good,defective", actor=SYSTEM)
    import_path(studio, SECOND_TOOL, ELPV, actor=SYSTEM)
    train(studio, SECOND_TOOL, actor=SYSTEM)
    set_roi(studio, SECOND_TOOL, get_roi(studio, DEMO_TOOL), SYSTEM)
    studio.engine.dispose()


def add_operator(data_dir: Path) -> None:
    """The operator account the browser signs in with (login is on, as shipped)."""
    studio = open_studio(settings_of(data_dir))
    if OPERATOR not in {user.username for user in list_users(studio, SYSTEM)}:
        create_user(studio, SYSTEM, OPERATOR, OPERATOR_PASSWORD, Role.OPERATOR, "Bench Operator")
    studio.engine.dispose()


def sign_in(page, url: str) -> None:  # noqa: ANN001 - playwright Page
    """Open ``url``: a fresh browser session starts on the login page; signed in, the URL's page opens."""
    page.goto(url)
    page.locator("h1").filter(has_text=re.compile("^Sign in$")).first.wait_for()
    page.get_by_role("textbox", name="Username", exact=True).fill(OPERATOR)
    page.get_by_role("textbox", name="Password", exact=True).fill(OPERATOR_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator("h1").filter(has_text=re.compile("^Sign in$")).first.wait_for(state="detached")


def camera_frames() -> list[np.ndarray]:
    cells = [sorted((ELPV / label).glob("*.png"))[i] for i in range(3) for label in ("good", "defective")]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in cells]
    return list(demo_frames(images, hold=2 * CAMERA_FPS, slide=6, loop=False))


def stamp(frame: np.ndarray, number: int) -> np.ndarray:
    """``frame`` with ``number`` (mod 4096) drawn as the page reads it (FRAME_CLOCK)."""
    stamped, (x0, y0), half = frame.copy(), CODE_AT, CODE_BITS // 2
    for bit in range(CODE_BITS):
        x, y = x0 + (bit % half) * CODE_SQUARE, y0 + (bit // half) * CODE_SQUARE
        stamped[y:y + CODE_SQUARE, x:x + CODE_SQUARE] = 255 if number >> bit & 1 else 0
    return stamped


def one_by_one(tool, report) -> dict[str, float]:  # noqa: ANN001
    """Seconds each of the tool's models takes alone on the crop ``report`` judged."""
    crop, seconds = report.tools[0].inspection.crop, {}
    for model in tool.models:
        start = time.perf_counter()
        model.model.judge([crop])
        seconds[f"{model.method}_alone"] = time.perf_counter() - start
    return seconds


def stage_times(data_dir: Path, frames: list[np.ndarray]) -> dict[str, float]:
    """Median ms per frame of each server stage, in this process (see the module doc)."""
    from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder
    from aiortc.jitterbuffer import JitterFrame

    studio = open_studio(settings_of(data_dir))
    tool = load_tool_models(studio, DEMO_TOOL)
    processor = FrameProcessor([tool], LiveSettings(live_config(studio, DEMO_TOOL)))
    encoder, source = Vp8Encoder(), av.CodecContext.create("libvpx", "w")
    source.width, source.height, source.pix_fmt, source.bit_rate = 640, 480, "yuv420p", 1_000_000
    source.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}
    decoder = Vp8Decoder()
    times: dict[str, list[float]] = {k: [] for k in STAGES}
    for n, rgb in enumerate(frames[:150]):
        camera = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        camera.pts, camera.time_base = n, Fraction(1, CAMERA_FPS)
        packets = b"".join(bytes(p) for p in source.encode(camera))
        t0 = time.perf_counter()
        decoded = decoder.decode(JitterFrame(packets, n * 3000)) if packets else []
        t1 = time.perf_counter()
        if not decoded:
            continue
        array = decoded[0].to_ndarray(format="rgb24")
        t2 = time.perf_counter()
        report = processor.judge(array)
        t3 = time.perf_counter()
        annotated = processor.annotate(array)
        t4 = time.perf_counter()
        out = av.VideoFrame.from_ndarray(annotated, format="rgb24")
        out.pts, out.time_base = decoded[0].pts, decoded[0].time_base
        t5 = time.perf_counter()
        encoder.encode(out)
        t6 = time.perf_counter()
        for method, seconds in one_by_one(tool, report).items():
            times.setdefault(method, []).append(seconds * 1000)
        for key, start, end in zip(STAGES, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6), strict=True):
            times[key].append((end - start) * 1000)
    studio.engine.dispose()
    return {key: round(statistics.median(v[10:]), 2) for key, v in times.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def studio_server(data_dir: Path, log_path: Path, threads: int, https: str | None = None):  # noqa: ANN201
    """The studio on a free port: ``http://localhost``, or with ``https`` (an address of this machine) over
    HTTPS on that address with a certificate from ``scripts/make_cert.sh``, as the README serves a tablet."""
    port = free_port()
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": str(threads)}
    env.pop("DATABASE_URL", None)
    options, url, context = [], f"http://localhost:{port}", None
    if https:
        certs = log_path.parent / "certs"
        subprocess.run(["scripts/make_cert.sh", https], cwd=ROOT, env={**env, "CERT_DIR": str(certs)}, check=True,
                       capture_output=True)
        options = ["--server.address", https, "--server.sslCertFile", str(certs / "studio.crt"),
                   "--server.sslKeyFile", str(certs / "studio.key")]
        url, context = f"https://{https}:{port}", ssl.create_default_context(cafile=certs / "studio.crt")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "scripts/serve.py", "--server.port", str(port),
                                    "--server.headless", "true", "--browser.gatherUsageStats", "false", *options],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import urllib.request
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2, context=context) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the studio did not start: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def cpu_snapshot(pid: int) -> tuple[float, dict[int, float], float]:
    """(server process CPU s, per-thread CPU s, Chromium's CPU s)."""
    server = psutil.Process(pid)
    threads = {t.id: t.user_time + t.system_time for t in server.threads()}
    times = server.cpu_times()
    browser = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] and "chrom" in proc.info["name"] and proc.info["cpu_times"]:
            browser += proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return times.user + times.system, threads, browser


def thread_name(pid: int, tid: int) -> str:
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "?"


def window(page, frame, pid: int, seconds: float) -> dict:  # noqa: ANN001
    """Readings of the page and the browser over ``seconds``, and the CPU split over that time."""
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Frames / s")
    caption = page.get_by_text(re.compile(r"verdicts / s · latency"))
    fps, verdicts, latency, received = [], [], [], []
    cpu0, threads0, browser0, t0 = *cpu_snapshot(pid), time.monotonic()
    last = frame.evaluate(RECEIVED_VIDEO)
    frame.evaluate(TAKE_SHOWN)
    while time.monotonic() - t0 < seconds:
        page.wait_for_timeout(2000)
        try:
            fps.append(float(re.findall(r"[\d.]+", metric.first.inner_text(timeout=5000))[-1]))
            text = caption.first.inner_text(timeout=5000)
            verdicts.append(float(re.search(r"([\d.]+) verdicts / s", text).group(1)))
            latency.append(float(re.search(r"latency (\d+) ms", text).group(1)))
        except Exception as error:  # noqa: BLE001 - a reading missed while the panel reruns is skipped
            print(f"missed a reading: {error}", file=sys.stderr)
        now = frame.evaluate(RECEIVED_VIDEO)
        if now and last and now["t"] > last["t"]:
            received.append((now["frames"] - last["frames"]) / ((now["t"] - last["t"]) / 1000))
        last = now
    elapsed = time.monotonic() - t0
    cpu1, threads1, browser1 = cpu_snapshot(pid)
    shown = sorted(frame.evaluate(TAKE_SHOWN))
    split = sorted(((threads1[t] - threads0.get(t, 0.0)) / elapsed * 100, t) for t in threads1)[::-1]
    return {
        "fps": statistics.median(fps) if fps else 0.0, "fps_readings": fps,
        "verdicts_per_s": statistics.median(verdicts) if verdicts else 0.0,
        "latency_ms": statistics.median(latency) if latency else None, "latency_readings": latency,
        "browser_received_fps": round(statistics.median(received), 1) if received else None,
        "video_latency_ms": round(statistics.median(shown), 1) if shown else None,
        "video_latency_p95_ms": round(shown[int(0.95 * (len(shown) - 1))], 1) if shown else None,
        "video_frames_timed": len(shown),
        "server_cpu_pct": round((cpu1 - cpu0) / elapsed * 100, 1),
        "server_threads_pct": [[thread_name(pid, t), round(p, 1)] for p, t in split[:6] if p >= 1],
        "chromium_cpu_pct": round((browser1 - browser0) / elapsed * 100, 1),
        "seconds": round(elapsed, 1),
    }


def browser_run(data_dir: Path, video: Path, work: Path, seconds: float, threads: int, screenshot: Path | None,
                https: str | None = None, video_latency: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    with (studio_server(data_dir, work / "streamlit.log", threads, https) as (url, pid),
          sync_playwright() as playwright):
        context = playwright.chromium.launch_persistent_context(  # the self-signed certificate accepted, as on
            str(work / "profile"), executable_path=CHROMIUM, viewport={"width": 1280, "height": 800},  # a tablet
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"], ignore_https_errors=bool(https))
        context.add_init_script(KEEP_PEER_CONNECTIONS)
        if video_latency:
            context.add_init_script(FRAME_CLOCK)
        try:
            page = context.new_page()
            page.set_default_timeout(120_000)
            sign_in(page, f"{url}/live")
            page.get_by_text("No frame inspected yet.").wait_for()
            frame = page.frame_locator(IFRAME).first
            frame.get_by_role("button", name="START").click()
            frame.locator("video").first.wait_for()
            frame.locator("video").first.evaluate("video => window.__watch && window.__watch(video)")
            page.get_by_text(re.compile(r"verdicts / s · latency")).first.wait_for(timeout=180_000)
            page.wait_for_timeout(5000)  # past the first frames' warm-up
            webrtc = page.locator(IFRAME).first.element_handle().content_frame()
            one = window(page, webrtc, pid, seconds)
            print(f"one tool + heatmap: {json.dumps(one)}", file=sys.stderr, flush=True)
            if screenshot:
                page.mouse.move(5, 795)
                page.wait_for_timeout(1000)
                page.screenshot(path=str(screenshot))
            frame.get_by_role("button", name="STOP").click()
            page.locator('[data-testid="stMultiSelect"]').first.click()
            page.get_by_role("option", name=SECOND_TOOL).click()
            page.keyboard.press("Escape")
            page.wait_for_timeout(3000)
            frame.get_by_role("button", name="START").click()
            page.get_by_text(re.compile(f"^{SECOND_TOOL}: ")).first.wait_for(timeout=180_000)
            frame.locator("video").first.evaluate("video => window.__watch && window.__watch(video)")
            page.wait_for_timeout(5000)
            two = window(page, webrtc, pid, seconds)
            print(f"two tools: {json.dumps(two)}", file=sys.stderr, flush=True)
        finally:
            context.close()
    return {"one": one, "two": two}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the studio (README)")
    parser.add_argument("--data-dir", type=Path, help="where to build the studio (kept); reused when it exists")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--server-log", type=Path, help="keep the studio's log here")
    parser.add_argument("--video-latency", action="store_true",
                        help="also time capture-to-display in the browser (FRAME_CLOCK; costs Chromium CPU)")
    parser.add_argument("--https", metavar="ADDRESS", help="serve over HTTPS on this LAN address of the machine "
                                                           "(scripts/make_cert.sh), as for a tablet")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data_dir = args.data_dir or work / "data"
        if not (data_dir / "studio.db").exists():
            build(data_dir)
        torch.set_num_threads(args.threads)  # as the studio's OMP_NUM_THREADS
        frames = camera_frames()
        video = work / "cells.y4m"
        write_y4m(video, (stamp(f, n) for n, f in enumerate(frames)), CAMERA_FPS)
        stages = stage_times(data_dir, frames)
        print(f"server stages (ms per frame, medians): {stages}", file=sys.stderr, flush=True)
        add_operator(data_dir)
        try:
            run = browser_run(data_dir, video, work, args.seconds, args.threads, args.screenshot, args.https,
                              args.video_latency)
        finally:
            if args.server_log:
                shutil.copyfile(work / "streamlit.log", args.server_log)
    one, two = run["one"], run["two"]
    result = {
        "fps": one["fps"], "latency_ms": one["latency_ms"], "verdicts_per_s": one["verdicts_per_s"],
        "browser_received_fps": one["browser_received_fps"], "video_latency_ms": one["video_latency_ms"],
        "fps_two_tools": two["fps"], "verdicts_per_s_two_tools": two["verdicts_per_s"],
        "latency_ms_two_tools": two["latency_ms"], "stages_ms": stages,
        "server_cpu_pct": one["server_cpu_pct"], "server_threads_pct": one["server_threads_pct"],
        "chromium_cpu_pct": one["chromium_cpu_pct"], "one_tool": one, "two_tools": two,
        "omp_threads": args.threads, "seconds": args.seconds, "https": args.https,
        "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
