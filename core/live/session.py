"""One browser session's live state: settings, results queue, processors, demo stream position.

The page keeps one :class:`LiveSession` in its session state; the video thread only sees the
processor (and through it the thread-safe settings and the results queue).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import numpy as np

from core.audit import Actor
from core.images import encode_png
from core.inspect.models import ToolModels
from core.live.demo import demo_frames
from core.live.processor import FrameProcessor, FrameReport
from core.live.settings import LiveConfig, LiveSettings
from core.live.worker import InferenceWorker
from core.live.writer import InspectionWriter
from core.roi import crop_to_roi
from core.samples import Candidate, ImportReport, add_images
from core.studio import Studio

RESULTS_KEPT = 8
NO_FRAMES_AFTER = 3.0  # seconds without a frame while playing: the camera is gone
DEMO_FPS = 15


class LiveSession:
    """Live state of one browser session for one tool."""

    def __init__(self, config: LiveConfig) -> None:
        self.settings = LiveSettings(config)
        self.results: queue.Queue[FrameReport] = queue.Queue(maxsize=RESULTS_KEPT)
        self._processors: dict[tuple, FrameProcessor] = {}
        self._workers: dict[int, InferenceWorker] = {}
        self._latest: FrameReport | None = None
        self._demo: Iterator[np.ndarray] | None = None
        self._demo_started = 0.0
        self._demo_shown = -1
        self._demo_frame: np.ndarray | None = None

    def processor(self, tools: list[ToolModels], writer: InspectionWriter | None,
                  station: str | None = None) -> FrameProcessor:
        """The processor for these tools (the first one's settings are on screen), their model versions,
        settings and ROIs: a new one when any of them changed."""
        key = (station, writer is not None, *((t.tool, tuple(t.version_ids.items()), t.roi, repr(t.settings),
                                               t.degraded) for t in tools))
        if key not in self._processors:
            self._processors = {k: p for k, p in self._processors.items() if k[0] != station}
            self._processors[key] = FrameProcessor(tools, self.settings, writer, self.results, station)
            kept = {id(p) for p in self._processors.values()}
            for gone in [k for k in self._workers if k not in kept]:
                self._workers.pop(gone).close(timeout=0)
        return self._processors[key]

    def worker(self, processor: FrameProcessor) -> InferenceWorker:
        """The inference thread of ``processor`` (one per processor; closed when the processor is replaced)."""
        if id(processor) not in self._workers:
            self._workers[id(processor)] = InferenceWorker(processor)
        return self._workers[id(processor)]

    def latest_frame(self) -> np.ndarray | None:
        """The newest raw frame any of this session's streams processed (camera or demo)."""
        live = [p for p in self._processors.values() if p.last_frame_at is not None]
        newest = max(live, key=lambda p: p.last_frame_at, default=None)
        return None if newest is None else newest.latest_frame()

    def latest_report(self) -> FrameReport | None:
        """The newest report from the video thread (older ones are skipped)."""
        while True:
            try:
                self._latest = self.results.get_nowait()
            except queue.Empty:
                return self._latest

    def camera_silent_for(self, processor: FrameProcessor) -> float | None:
        """Seconds since the last camera frame, when the stream had frames and then stopped."""
        if processor.last_frame_at is None:
            return None
        silent = time.monotonic() - processor.last_frame_at
        return silent if silent > NO_FRAMES_AFTER else None

    # --- demo stream ---------------------------------------------------------------------------
    def demo_step(self, images: list[np.ndarray], processor: FrameProcessor) -> np.ndarray:
        """The demo stream's annotated frame for now: frames advance with the clock at 15 fps, and
        frames the page was too slow to show are skipped (dropped, never queued)."""
        if self._demo is None:
            self._demo = demo_frames(images)
            self._demo_started = time.monotonic()
        due = int((time.monotonic() - self._demo_started) * DEMO_FPS)
        while self._demo_shown < due or self._demo_frame is None:
            self._demo_frame = next(self._demo)
            self._demo_shown += 1
        return processor.process(self._demo_frame)

    def stop_demo(self) -> None:
        self._demo, self._demo_shown, self._demo_frame = None, -1, None


def capture_sample(studio: Studio, tool_name: str, frame: np.ndarray, roi: list[float] | None,
                   label: str, actor: Actor) -> ImportReport:
    """Add the ROI of a live frame to the tool's samples (source ``capture``), as training will see it."""
    crop = np.ascontiguousarray(crop_to_roi(frame, roi))
    name = f"live-{time.strftime('%Y%m%d-%H%M%S')}.png"
    return add_images(studio, tool_name, [Candidate(name, label, lambda: encode_png(crop))], source="capture",
                      actor=actor)
