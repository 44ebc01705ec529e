"""Live pipeline benchmark: the page's frame processor fed a synthetic 640 x 480 stream, no browser.

The processor is built as the Live page builds it: the tools' models from
``core.inspect.models.load_tool_models``, the settings from ``core.live.tool.live_config`` (the tool's
saved live options and the thresholds its models decide with), ``core.live.processor.FrameProcessor``.

The stream is the demo stream (core.live.demo) of real ELPV cells sliding in and holding still,
inspected by a tool trained on the 40 committed cells (tests/data/elpv) in a temporary studio.

    bench/quiet.sh .venv/bin/python bench/live.py [--frames 200] [--soak 300] [--profile balanced]

Prints medians per stage (crop, preprocess, forward, heatmap, overlay) of the one-tool pipeline,
the overhead ratio of the processor's total time against a bare backbone forward on the same crop
(interleaved frame by frame in the same run), the two-tool frame rate, and a real-time soak: a
camera thread produces 30 frames per second into a one-frame mailbox (the newest frame replaces
an unprocessed one, as streamlit-webrtc's async processing does) and the processor takes the
newest; per minute, the capture-to-result latency and the longest time a frame waited for the
processor (at most one camera frame interval when nothing queues) show whether anything queues. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.audit import SYSTEM  # noqa: E402
from core.config import Settings  # noqa: E402
from core.inspect.models import ToolModels, load_tool_models  # noqa: E402
from core.inspect.roi import region  # noqa: E402
from core.live.demo import demo_frames  # noqa: E402
from core.live.processor import FrameProcessor  # noqa: E402
from core.live.settings import LiveSettings  # noqa: E402
from core.live.tool import live_config  # noqa: E402
from core.samples import import_path  # noqa: E402
from core.studio import open_studio  # noqa: E402
from core.tools import create_tool, set_roi  # noqa: E402
from core.training import train  # noqa: E402
from models.backbones.registry import get_backbone  # noqa: E402
from models.classifier.estimator import network_input  # noqa: E402
from models.profiles import DEFAULT_PROFILE, PROFILES, get_profile  # noqa: E402

ELPV = ROOT / "tests" / "data" / "elpv"
ROI_ONE = [0.2, 0.1, 0.8, 0.9]
ROIS_TWO = {"left": [0.0, 0.1, 0.5, 0.9], "right": [0.5, 0.1, 1.0, 0.9]}
CAMERA_FPS = 30


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def stream_images() -> list[np.ndarray]:
    from PIL import Image

    paths = sorted((ELPV / "good").glob("*.png"))[:6] + sorted((ELPV / "defective").glob("*.png"))[:6]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def build_studio(folder: Path, profile: str):  # noqa: ANN201 - a Studio
    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    for name, roi in {"cell": ROI_ONE, **ROIS_TWO}.items():
        create_tool(studio, name, "good,defective", actor=SYSTEM)
        import_path(studio, name, ELPV, actor=SYSTEM)
        train(studio, name, profile=profile, actor=SYSTEM)
        set_roi(studio, name, roi, SYSTEM)
    return studio


def page_processor(studio, names: list[str]) -> tuple[FrameProcessor, list[ToolModels]]:  # noqa: ANN001
    """The frame processor as the Live page makes it for ``names`` (the first one's settings on screen)."""
    tools = [load_tool_models(studio, name) for name in names]
    return FrameProcessor(tools, LiveSettings(live_config(studio, names[0]))), tools


def one_tool(studio, frames: list[np.ndarray]) -> dict:  # noqa: ANN001
    """One tool with heatmap; the bare forward interleaved on the same crops."""
    processor, (tool,) = page_processor(studio, ["cell"])
    estimator = tool.models[0].model  # the tool's classifier
    profile = get_profile(estimator.profile)  # the tool's own network, input size and preprocessing
    backbone = get_backbone(profile.backbone)
    totals, forwards, preprocess, heatmap_extra, stages = [], [], [], [], {}
    for frame in frames:
        started = time.perf_counter()
        processor.process(frame)
        totals.append(time.perf_counter() - started)
        for name, ms in processor.last_report.stages_ms.items():
            stages.setdefault(name, []).append(ms / 1000)
        x0, y0, x1, y1 = region(frame.shape[1], frame.shape[0], tool.roi, "crop")  # the processor's crop
        crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
        t0 = time.perf_counter()
        batch = network_input([crop], profile.input_size, estimator.standardise)
        t1 = time.perf_counter()
        with torch.inference_mode():
            backbone.forward_stages(batch, upto=estimator.head_.last_stage)  # the stages the model reads
        t2 = time.perf_counter()
        preprocess.append(t1 - t0)
        forwards.append(t2 - t1)
        estimator.predict_proba([crop])
        t3 = time.perf_counter()
        estimator.predict_proba_and_heatmap([crop])
        t4 = time.perf_counter()
        heatmap_extra.append((t4 - t3) - (t3 - t2))  # the same call with and without the heatmap, paired
    model_ms = median_ms(stages["model"])
    preprocess_ms, forward_ms = median_ms(preprocess), median_ms(forwards)
    return {
        "profile": profile.name,
        "frames": len(frames),
        "total_ms": median_ms(totals),
        "fps": round(1000 / median_ms(totals), 2),
        "stages_ms": {
            "crop": median_ms(stages["crop"]),
            "preprocess": preprocess_ms,
            "forward": forward_ms,
            # predict_proba_and_heatmap minus predict_proba on the same crop (paired), plus combining maps
            "heatmap": round(max(0.0, median_ms(heatmap_extra)) + median_ms(stages["heatmap"]), 2),
            "decide": median_ms(stages["decide"]),
            "overlay": median_ms(stages["overlay"]),
        },
        "model_call_ms": model_ms,
        "bare_forward_ms": forward_ms,
        "overhead_ratio": round(median_ms(totals) / forward_ms, 3),
        "overhead_ratio_vs_preprocess_and_forward": round(median_ms(totals) / (preprocess_ms + forward_ms), 3),
    }


def two_tools(studio, frames: list[np.ndarray]) -> dict:  # noqa: ANN001
    processor, _ = page_processor(studio, list(ROIS_TWO))
    totals = []
    for frame in frames:
        started = time.perf_counter()
        processor.process(frame)
        totals.append(time.perf_counter() - started)
    return {"frames": len(frames), "total_ms": median_ms(totals), "fps": round(1000 / median_ms(totals), 2)}


class Mailbox:
    """The newest frame only: a new frame replaces one not yet taken (that one is dropped)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: tuple[float, np.ndarray] | None = None
        self.dropped = 0
        self.produced = 0

    def put(self, frame: np.ndarray) -> None:
        with self._condition:
            if self._item is not None:
                self.dropped += 1
            self._item = (time.perf_counter(), frame)
            self.produced += 1
            self._condition.notify()

    def take(self, timeout: float) -> tuple[float, np.ndarray] | None:
        with self._condition:
            if self._item is None:
                self._condition.wait(timeout)
            item, self._item = self._item, None
            return item


def soak(studio, images: list[np.ndarray], seconds: float) -> dict:  # noqa: ANN001
    """A 30 fps camera thread and the processor in real time for ``seconds``."""
    processor, _ = page_processor(studio, ["cell"])
    mailbox, stop = Mailbox(), threading.Event()

    def camera() -> None:
        source = demo_frames(images, hold=15, slide=5)
        next_at = time.perf_counter()
        while not stop.is_set():
            mailbox.put(next(source))
            next_at += 1 / CAMERA_FPS
            time.sleep(max(0.0, next_at - time.perf_counter()))

    thread = threading.Thread(target=camera, daemon=True)
    started = time.perf_counter()
    thread.start()
    per_minute: dict[int, list[float]] = {}
    waits: dict[int, list[float]] = {}
    processed = 0
    while time.perf_counter() - started < seconds:
        item = mailbox.take(timeout=1.0)
        if item is None:
            continue
        captured, frame = item
        taken = time.perf_counter()
        processor.process(frame)
        done = time.perf_counter()
        processed += 1
        minute = int((done - started) // 60)
        per_minute.setdefault(minute, []).append(done - captured)
        waits.setdefault(minute, []).append(taken - captured)
    stop.set()
    thread.join()
    complete = [m for m in sorted(per_minute) if (m + 1) * 60 <= seconds] or sorted(per_minute)
    minutes = {m: {"latency_median_ms": median_ms(per_minute[m]),
                   "latency_p95_ms": round(float(np.percentile(per_minute[m], 95)) * 1000, 2),
                   "wait_max_ms": round(max(waits[m]) * 1000, 2), "frames": len(per_minute[m])}
               for m in complete}
    first, last = minutes[complete[0]], minutes[complete[-1]]
    return {"seconds": seconds, "produced": mailbox.produced, "processed": processed, "dropped": mailbox.dropped,
            "fps": round(processed / seconds, 2), "by_minute": minutes,
            "wait_max_ms": max(m["wait_max_ms"] for m in minutes.values()),
            "latency_last_vs_first": round(last["latency_median_ms"] / first["latency_median_ms"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames per measured configuration")
    parser.add_argument("--soak", type=float, default=300.0, help="seconds of real-time soak (0 skips it)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES), help="the tools' network profile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        studio = build_studio(Path(folder) / "data", args.profile)
        images = stream_images()
        frames = list(islice(demo_frames(images, hold=15, slide=5), args.frames))
        warm, _ = page_processor(studio, ["cell"])
        for frame in frames[:10]:
            warm.process(frame)
        one = one_tool(studio, frames)
        print(f"one tool with heatmap ({one['profile']} profile): {one['fps']} fps "
              f"(median {one['total_ms']} ms per frame); "
              f"stages ms {one['stages_ms']}; bare forward {one['bare_forward_ms']} ms; "
              f"overhead ratio {one['overhead_ratio']}", flush=True)
        two = two_tools(studio, frames)
        print(f"two tools on one frame: {two['fps']} fps (median {two['total_ms']} ms)", flush=True)
        soaked = soak(studio, images, args.soak) if args.soak > 0 else None
        if soaked:
            print(f"soak {args.soak:.0f} s at {CAMERA_FPS} fps in: processed {soaked['processed']}, dropped "
                  f"{soaked['dropped']}, longest wait of a frame for the processor {soaked['wait_max_ms']} ms, "
              f"by minute {soaked['by_minute']}", flush=True)
        studio.engine.dispose()
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''} cpus={torch.get_num_threads()}".strip(),
        "fps_one_tool": one["fps"], "fps_two_tools": two["fps"], "overhead_ratio": one["overhead_ratio"],
        "one_tool": one, "two_tools": two, "soak": soaked,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
