"""Inference off the video thread: frames that arrive faster than the models judge them are dropped,
never queued, and the video gets every frame back at once with the newest verdicts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from core.audit import SYSTEM
from core.inspect.models import load_tool_models
from core.live.demo import place
from core.live.overlay import COLOURS
from core.live.processor import FrameProcessor, FrameReport
from core.live.settings import LiveSettings
from core.live.worker import InferenceWorker
from core.studio import Studio
from core.tools import set_roi
from tests.core.live.conftest import TOOL, cells

ROI = [0.2, 0.1, 0.8, 0.9]
TIMEOUT = 60.0


class GatedProcessor(FrameProcessor):
    """The real processor, whose judging waits for ``gate`` (so the test, not the clock, says when the
    models are slower than the camera); ``judged`` lists the frames it judged."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.judged: list[np.ndarray] = []

    def judge(self, frame: np.ndarray, arrived: float | None = None) -> FrameReport:
        self.entered.set()
        assert self.gate.wait(TIMEOUT)
        self.judged.append(frame)
        return super().judge(frame, arrived)


def wait_for(condition) -> None:  # noqa: ANN001
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def processor(trained: Studio) -> GatedProcessor:
    set_roi(trained, TOOL, ROI, SYSTEM)
    settings = LiveSettings()
    settings.update(smoothing=1)
    return GatedProcessor([load_tool_models(trained, TOOL)], settings)


@pytest.fixture
def judging(processor: GatedProcessor) -> Iterator[InferenceWorker]:
    """A worker whose processor judges at once (the gate open)."""
    processor.gate.set()
    worker = InferenceWorker(processor)
    yield worker
    worker.close()


def test_frames_faster_than_inference_are_dropped_not_queued(processor: GatedProcessor) -> None:
    worker = InferenceWorker(processor)
    try:
        frames = [place(cells("good")[i]) for i in range(10)]
        first = worker.process(frames[0])
        assert first.shape == frames[0].shape  # back at once, before any verdict
        assert processor.entered.wait(TIMEOUT)  # the worker holds frame 0, the models are "slow"
        returned = [worker.process(frame) for frame in frames[1:]]  # none of these waits for the models
        assert len(returned) == 9 and worker.received == 10
        assert worker.dropped == 8  # frames 1-8 were replaced in the one-frame mailbox by newer ones
        processor.gate.set()
        wait_for(worker.idle)
        assert [id(f) for f in processor.judged] == [id(frames[0]), id(frames[9])]  # the first, then the newest
        assert processor.last_report.index == 2
    finally:
        processor.gate.set()
        worker.close()


def test_the_next_frame_shows_the_workers_verdict(processor: GatedProcessor, judging: InferenceWorker) -> None:
    bad = place(cells("defective")[0])
    judging.process(bad)
    wait_for(judging.idle)
    report = processor.last_report
    assert report.decision == "fail" and report.latency_ms >= report.stages_ms["model"]
    out = judging.process(bad)
    assert tuple(int(v) for v in out[5, 5]) == COLOURS["fail"]
    assert processor.latest_frame() is not None


def test_video_frame_rate_counts_the_frames_of_the_last_second() -> None:
    ticks = iter(np.cumsum([0.0] + [0.010, 0.050] * 200 + [0.2] + [1 / 30] * 40))  # jittery 30 ms, a stall, 30 fps
    processor = FrameProcessor([], LiveSettings(), clock=lambda: float(next(ticks)))
    frame = np.zeros((480, 640, 3), np.uint8)
    for _ in range(401):
        processor.annotate(frame)
    assert processor.video_fps == pytest.approx(1 / 0.030, rel=0.05)  # 33.3 fps, not the mean rate 60
    processor.annotate(frame)  # after a 0.2 s stall: the intervals of the last second over that second
    assert processor.video_fps == pytest.approx(0.8 / 0.030 + 1, abs=1)  # 27.7, not 20
    for _ in range(40):
        processor.annotate(frame)
    assert processor.video_fps == pytest.approx(30, abs=0.5)  # the stall is out of the window a second later


def test_a_smaller_camera_frame_gets_the_verdict_scaled_to_it(processor: GatedProcessor,
                                                               judging: InferenceWorker) -> None:
    """The browser lowers the camera's resolution when the CPU is short: the verdict found on a 640 x 480
    frame is drawn on the next 320 x 240 one (box scaled, heatmap inside), and the stream goes on (an error
    in the frame callback ends a streamlit-webrtc stream for good)."""
    bad = place(cells("defective")[0])
    judging.process(bad)
    wait_for(judging.idle)
    small = np.ascontiguousarray(bad[::2, ::2])
    out = judging.process(small)
    assert out.shape == small.shape and judging.overlay_failures == 0
    assert tuple(int(v) for v in out[3, 3]) == COLOURS["fail"]  # the banner
    x0, y0, x1, y1 = processor._marks[0].box_on(320, 240)
    assert (x0, y0, x1, y1) == tuple(round(v / 2) for v in processor._marks[0].box)


def test_an_overlay_that_fails_sends_the_raw_frame_and_keeps_the_stream(processor: GatedProcessor,
                                                                         judging: InferenceWorker) -> None:
    frame = place(cells("good")[0])

    def broken(_: np.ndarray) -> np.ndarray:
        raise ValueError("overlay broke")

    processor.annotate = broken  # the callback's only step that could raise
    assert judging.process(frame) is frame and judging.process(frame) is frame
    assert judging.overlay_failures == 2
