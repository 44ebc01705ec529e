"""The frame processor: one camera frame in, the annotated frame out, inspections recorded.

Per frame and tool: crop the ROI, ask each of the tool's models for an opinion (with its heatmap),
smooth the defect score over the last N frames, decide pass / review / fail, let the trigger say
whether this is a part to record, and draw the overlay. No Streamlit here; the page's video callback
only calls :meth:`FrameProcessor.process`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from core.decision import ANOMALY, combine, decide, decide_anomaly
from core.live.opinions import Opinion
from core.live.overlay import ToolMark, draw_overlay, overall_decision
from core.live.settings import LiveConfig, LiveSettings
from core.live.smoothing import MovingAverage
from core.live.tool import LiveTool
from core.live.triggers import PartTrigger, TriggerParams, thumbnail
from core.live.writer import InspectionWriter, PendingInspection
from core.roi import roi_pixels
from storage.tables import utc_now

STAGES = ("crop", "model", "heatmap", "decide", "overlay")
FPS_SMOOTHING = 0.1  # weight of the newest interval in the frame-rate average


@dataclass(frozen=True)
class ToolResult:
    """One tool's verdict on one frame (``score`` is the smoothed defect score)."""

    tool: str
    decision: str
    label: str
    score: float
    raw_score: float
    scores: dict[str, float]
    opinions: dict[str, dict[str, float | str]]
    recorded: bool


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


@dataclass
class _ToolState:
    trigger: PartTrigger
    smoothers: dict[str, MovingAverage] = field(default_factory=dict)
    passes_seen: int = 0


class FrameProcessor:
    """Processes RGB uint8 frames ``(H, W, 3)`` for the given tools (see the module doc).

    ``results`` (optional) receives a :class:`FrameReport` per frame; when it is full the oldest
    report is dropped, never the video. ``writer`` (optional) records the triggered inspections.
    """

    def __init__(self, tools: list[LiveTool], settings: LiveSettings, writer: InspectionWriter | None = None,
                 results: queue.Queue[FrameReport] | None = None, station: str = "live",
                 trigger_params: TriggerParams | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.tools = tools
        self.settings = settings
        self.writer = writer
        self.results = results
        self.station = station
        self._clock = clock
        self._states = {tool.name: _ToolState(PartTrigger(trigger_params)) for tool in tools}
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._index = 0
        self._recorded = 0
        self._fps = 0.0
        self._last_start: float | None = None
        self.last_report: FrameReport | None = None
        self.last_frame_at: float | None = None  # time.monotonic() of the last frame

    def latest_frame(self) -> np.ndarray | None:
        """A copy of the last raw frame (for drawing the ROI, or capturing a sample)."""
        with self._lock:
            return None if self._latest is None else self._latest.copy()

    def process(self, frame: np.ndarray) -> np.ndarray:
        """The annotated copy of ``frame``; records an inspection when a tool's trigger fires."""
        start = self._clock()
        with self._lock:
            self._latest = frame
        self.last_frame_at = time.monotonic()
        config = self.settings.snapshot()
        manual = self.settings.take_inspection_request()
        stages = dict.fromkeys(STAGES, 0.0)
        marks: list[ToolMark] = []
        results: list[ToolResult] = []
        height, width = frame.shape[:2]
        for tool in self.tools:
            t0 = self._clock()
            box = roi_pixels(tool.roi, width, height)
            crop = np.ascontiguousarray(frame[box[1]:box[3], box[0]:box[2]])
            state = self._states[tool.name]
            if state.trigger.observe(thumbnail(crop)):
                for smoother in state.smoothers.values():
                    smoother.reset()
            t1 = self._clock()
            opinions = [o for source in tool.sources for o in source.opinions([crop], config.tta)]
            t2 = self._clock()
            heatmap = self._heatmap(opinions) if config.heatmap else None
            t3 = self._clock()
            result = self._decide(tool, state, config, opinions, manual, crop, start)
            t4 = self._clock()
            stages["crop"] += t1 - t0
            stages["model"] += t2 - t1
            stages["heatmap"] += t3 - t2
            stages["decide"] += t4 - t3
            marks.append(ToolMark(tool.name, box, result.decision, result.score, heatmap))
            results.append(result)
        t5 = self._clock()
        annotated = frame.copy()
        status = self._status(config)
        draw_overlay(annotated, marks, config.heatmap_opacity, status)
        end = self._clock()
        stages["overlay"] = end - t5
        self._publish(start, end, marks, results, stages)
        return annotated

    @staticmethod
    def _heatmap(opinions: list[Opinion]) -> np.ndarray | None:
        """The models' defect maps combined (maximum), at the size of the largest one."""
        maps = [o.heatmap for o in opinions if o.heatmap is not None]
        if not maps:
            return None
        size = max(maps, key=lambda m: m.size).shape
        return np.maximum.reduce([m if m.shape == size else cv2.resize(m, size[::-1]) for m in maps])

    def _decide(self, tool: LiveTool, state: _ToolState, config: LiveConfig, opinions: list[Opinion],
                manual: bool, crop: np.ndarray, start: float) -> ToolResult:
        verdicts = {}
        rules = tool.own_config or config  # threshold and review band
        for opinion in opinions:
            smoother = state.smoothers.setdefault(opinion.source, MovingAverage(config.smoothing))
            smoother.resize(config.smoothing)
            smoothed = smoother.add(opinion.score)
            threshold = rules.threshold if opinion.threshold is None else opinion.threshold
            if opinion.source == ANOMALY:
                verdict = decide_anomaly(smoothed, tool.good_class, threshold, rules.review_band)
            else:
                defects = {k: v for k, v in opinion.probabilities.items() if k != tool.good_class}
                verdict = decide({tool.good_class: 1.0 - smoothed, **defects}, tool.good_class, threshold,
                                 rules.review_band)
            verdicts[opinion.source] = verdict
        main = verdicts[opinions[0].source]
        combined = combine(verdicts)  # both pass -> pass, both fail -> fail, else review
        full = all(s.full for s in state.smoothers.values())
        recorded = state.trigger.should_record(config.trigger, full, manual)
        opinion_fields = {o.source: {"decision": verdicts[o.source].decision, "score": round(verdicts[o.source].score, 6)}
                          for o in opinions}
        if recorded and self.writer is not None:
            self._record(tool, state, config, combined.decision, combined.label, main.score, opinions,
                         opinion_fields, crop, start)
        return ToolResult(tool.name, combined.decision, combined.label, main.score, opinions[0].score,
                          opinions[0].probabilities, opinion_fields, recorded)

    def _record(self, tool: LiveTool, state: _ToolState, config: LiveConfig, decision: str, label: str,
                score: float, opinions: list[Opinion], opinion_fields: dict, crop: np.ndarray, start: float) -> None:
        keep = decision != "pass"
        if not keep and config.keep_pass_share > 0:
            every = max(1, round(1 / config.keep_pass_share))
            keep = state.passes_seen % every == 0  # the first pass, then one in ``every``
            state.passes_seen += 1
        anomaly = next((o.score for o in opinions if o.source == "anomaly"), None)
        self.writer.submit(PendingInspection(
            tool_id=tool.id, model_version_id=tool.model_version_id, station=self.station, created_at=utc_now(),
            decision=decision, label=label, score=score, scores=opinions[0].probabilities,
            latency_ms=(self._clock() - start) * 1000, opinions=opinion_fields if len(opinions) > 1 else {},
            anomaly_score=anomaly, degraded=tool.degraded, image=crop.copy() if keep else None,
        ))
        self._recorded += 1

    def _status(self, config: LiveConfig) -> str:
        latency = self.last_report.latency_ms if self.last_report else 0.0
        extras = " · TTA" if config.tta else ""
        return f"{self._fps:4.1f} fps · {latency:3.0f} ms · {config.trigger} · {self._recorded} recorded{extras}"

    def _publish(self, start: float, end: float, marks: list[ToolMark], results: list[ToolResult],
                 stages: dict[str, float]) -> None:
        if self._last_start is not None and start > self._last_start:
            rate = 1.0 / (start - self._last_start)
            self._fps = rate if self._fps == 0 else (1 - FPS_SMOOTHING) * self._fps + FPS_SMOOTHING * rate
        self._last_start = start
        self._index += 1
        report = FrameReport(self._index, overall_decision(marks), results, self._fps, (end - start) * 1000,
                             {k: v * 1000 for k, v in stages.items()}, self._recorded)
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
