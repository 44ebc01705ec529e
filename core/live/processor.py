"""The frame processor: one camera frame in, the annotated frame out, inspections recorded.

Per frame and tool: crop the ROI, ask the engine for each model's opinion (with its map), smooth each
model's score over the last N frames, let the engine decide pass / review / fail on the smoothed
scores, let the trigger say whether this is a part to record, and draw the overlay. Only smoothing and
triggers are live-specific; judging and deciding are ``core.inspect.engine``'s, so a frame with
smoothing 1 is judged exactly as ``predict`` judges the same crop. No Streamlit here; the page's video
callback only calls :meth:`FrameProcessor.process`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.inspect.engine import Inspection, cut, decide, judge
from core.inspect.models import ToolModels
from core.inspect.recorder import RecordContext
from core.inspect.roi import region
from core.live.overlay import ToolMark, draw_overlay, overall_decision
from core.live.settings import LiveConfig, LiveSettings
from core.live.smoothing import MovingAverage
from core.live.triggers import PartTrigger, TriggerParams, thumbnail
from core.live.writer import InspectionWriter
from models.backbones.shared_pass import shared_passes
from models.registration import map_onto_region
from storage.tables import utc_now

STAGES = ("crop", "model", "heatmap", "decide", "overlay")
RATE_WINDOW = 1.0  # seconds: a frame rate counts the frames of the last second


class FrameRate:
    """Frames per second over the last :data:`RATE_WINDOW` s: the intervals in the window over the time they
    span. The video's counter and the page's panel read this one figure; a stall lowers it by its share of
    the second, for one second (an average of intervals weighted 0.1 falls from 29 to 20 fps on the frame
    after a single 0.2 s stall, which the video's counter then shows while the panel's older sample does not)."""

    def __init__(self) -> None:
        self.rate = 0.0
        self._times: deque[float] = deque()

    def tick(self, now: float) -> float:
        """Count a frame at ``now`` (s); the new rate."""
        self._times.append(now)
        while len(self._times) > 2 and now - self._times[0] > RATE_WINDOW:  # a slow stream: its last interval
            self._times.popleft()
        span = now - self._times[0]
        self.rate = (len(self._times) - 1) / span if span > 0 else self.rate
        return self.rate


@dataclass(frozen=True)
class ToolResult:
    """One tool's verdict on one frame (``score`` is the smoothed defect score)."""

    tool: str
    decision: str
    label: str
    score: float
    raw_score: float
    scores: dict[str, float]
    opinions: dict[str, dict]
    recorded: bool
    inspection: Inspection | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class FrameReport:
    """What the page shows next to the video: verdicts, speed, stage timings."""

    index: int
    decision: str
    tools: list[ToolResult]
    fps: float
    latency_ms: float
    stages_ms: dict[str, float]
    recorded_total: int
    video_fps: float = 0.0  # frames returned to the browser per second (``fps``: frames judged per second)


@dataclass
class _ToolState:
    trigger: PartTrigger
    smoothers: dict[str, MovingAverage] = field(default_factory=dict)


class FrameProcessor:
    """Processes RGB uint8 frames ``(H, W, 3)`` for the given tools (see the module doc).

    ``tools`` are the loaded models of each tool on the station; the first one decides with the live
    settings on screen, the others with their saved thresholds. ``results`` (optional) receives a
    :class:`FrameReport` per frame; when it is full the oldest report is dropped, never the video.
    ``writer`` (optional) records the triggered inspections, at ``station`` (None: the studio's).
    """

    def __init__(self, tools: list[ToolModels], settings: LiveSettings, writer: InspectionWriter | None = None,
                 results: queue.Queue[FrameReport] | None = None, station: str | None = None,
                 trigger_params: TriggerParams | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.tools = tools
        self.settings = settings
        self.writer = writer
        self.results = results
        self.station = station
        self._clock = clock
        self._states = {tool.tool: _ToolState(PartTrigger(trigger_params)) for tool in tools}
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._index = 0
        self._recorded = 0
        self._verdict_rate = FrameRate()
        self._marks: list[ToolMark] = []
        self._video_rate = FrameRate()
        self.last_report: FrameReport | None = None
        self.last_frame_at: float | None = None  # time.monotonic() of the last frame

    def now(self) -> float:
        """This processor's clock (for :meth:`judge`'s ``arrived``)."""
        return self._clock()

    @property
    def video_fps(self) -> float:
        """Frames returned to the video per second (the counter drawn on the video, see :class:`FrameRate`)."""
        return self._video_rate.rate

    def latest_frame(self) -> np.ndarray | None:
        """A copy of the last raw frame (for drawing the ROI, or capturing a sample)."""
        with self._lock:
            return None if self._latest is None else self._latest.copy()

    def process(self, frame: np.ndarray) -> np.ndarray:
        """The annotated copy of ``frame``; records an inspection when a tool's trigger fires."""
        start = self._clock()
        marks, results, stages = self._judge(frame, start)
        t5 = self._clock()
        annotated = self.annotate(frame)
        end = self._clock()
        stages["overlay"] = end - t5
        self._publish(start, end, marks, results, stages)
        return annotated

    def judge(self, frame: np.ndarray, arrived: float | None = None) -> FrameReport:
        """Judge ``frame`` (and record it when a trigger fires) without drawing: the inference worker's
        half of :meth:`process`. ``arrived`` (this processor's clock) is when the frame reached the
        server: the report's latency counts the time it waited for the worker."""
        start = self._clock()
        marks, results, stages = self._judge(frame, start)
        self._publish(start, self._clock(), marks, results, stages, arrived)
        return self.last_report

    def annotate(self, frame: np.ndarray) -> np.ndarray:
        """A copy of ``frame`` with the overlay of the newest verdicts (the video thread's half)."""
        with self._lock:
            self._latest = frame
            marks = self._marks
        self.last_frame_at = time.monotonic()
        self._video_rate.tick(self._clock())
        config = self.settings.snapshot()
        annotated = frame.copy()
        draw_overlay(annotated, marks, config.heatmap_opacity, self._status(config))
        return annotated

    def _judge(self, frame: np.ndarray, start: float) -> tuple[list[ToolMark], list[ToolResult], dict[str, float]]:
        config = self.settings.snapshot()
        manual = self.settings.take_inspection_request()
        stages = dict.fromkeys(STAGES, 0.0)
        marks: list[ToolMark] = []
        results: list[ToolResult] = []
        height, width = frame.shape[:2]
        with shared_passes():  # tools judging one region share their backbone's pass
            for index, tool in enumerate(self.tools):
                t0 = self._clock()
                if index == 0:  # the tool whose settings are on screen decides with them
                    tool = tool.with_thresholds(dict(config.thresholds), dict(config.review_bands))
                box = region(width, height, tool.roi, "crop")
                crop, placed = cut(tool, frame, box)
                state = self._states[tool.tool]
                if state.trigger.observe(thumbnail(crop)):
                    for smoother in state.smoothers.values():
                        smoother.reset()
                t1 = self._clock()
                opinions = judge(tool, crop, config.tta)
                t2 = self._clock()
                smoothed = {}
                for opinion in opinions:
                    if opinion.score is not None:
                        smoother = state.smoothers.setdefault(opinion.method, MovingAverage(config.smoothing))
                        smoother.resize(config.smoothing)
                        smoothed[opinion.method] = smoother.add(opinion.score)
                inspection = decide(tool, opinions, crop, box, smoothed, (self._clock() - start) * 1000)
                t3 = self._clock()
                heatmap = inspection.map if config.heatmap else None  # the models' maps combined,
                if heatmap is not None and placed is not None:  # laid where the part lies in the drawn region
                    heatmap = map_onto_region(heatmap, box, placed)
                full = all(s.full for s in state.smoothers.values())
                recorded = state.trigger.should_record(config.trigger, full, manual)
                if recorded and self.writer is not None:
                    self.writer.submit(inspection, RecordContext(self.station, created_at=utc_now(),
                                                                 latency_ms=(self._clock() - start) * 1000))
                    self._recorded += 1
                first = opinions[0]
                results.append(ToolResult(tool.tool, inspection.decision, inspection.verdict.label,
                                          inspection.verdict.score, first.score if first.score is not None else 1.0,
                                          first.probabilities, inspection.opinions_json(), recorded, inspection))
                t4 = self._clock()
                stages["crop"] += t1 - t0
                stages["model"] += t2 - t1
                stages["heatmap"] += t3 - t2  # combining the maps and deciding
                stages["decide"] += t4 - t3
                marks.append(ToolMark(tool.tool, box, inspection.decision, inspection.verdict.score, heatmap,
                                      (width, height)))
        with self._lock:
            self._marks = marks
        return marks, results, stages

    def _status(self, config: LiveConfig) -> str:
        latency = self.last_report.latency_ms if self.last_report else 0.0
        extras = " · TTA" if config.tta else ""
        return f"{self.video_fps:4.1f} fps · {latency:3.0f} ms · {config.trigger} · {self._recorded} recorded{extras}"

    def _publish(self, start: float, end: float, marks: list[ToolMark], results: list[ToolResult],
                 stages: dict[str, float], arrived: float | None = None) -> None:
        fps = self._verdict_rate.tick(start)
        self._index += 1
        report = FrameReport(self._index, overall_decision(marks), results, fps,
                             (end - (start if arrived is None else min(arrived, start))) * 1000,
                             {k: v * 1000 for k, v in stages.items()}, self._recorded, self.video_fps or fps)
        self.last_report = report
        if self.results is not None:
            while True:
                try:
                    self.results.put_nowait(report)
                    break
                except queue.Full:
                    try:
                        self.results.get_nowait()
                    except queue.Empty:
                        pass
