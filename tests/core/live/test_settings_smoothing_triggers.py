"""Live settings (thread-safe), the moving average and the trigger modes, on plain values and frames."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.errors import InvalidInputError
from core.live.settings import LiveConfig, LiveSettings
from core.live.smoothing import MovingAverage
from core.live.triggers import PartTrigger, TriggerParams, thumbnail


def test_settings_validate_and_reach_another_thread() -> None:
    settings = LiveSettings()
    seen: list[LiveConfig] = []
    changed, read = threading.Event(), threading.Event()

    def video_thread() -> None:
        changed.wait(5)
        seen.append(settings.snapshot())
        read.set()

    thread = threading.Thread(target=video_thread)
    thread.start()
    settings.update(thresholds={"classifier": 0.3}, smoothing=9, heatmap=False, trigger="manual")
    changed.set()
    read.wait(5)
    thread.join()
    assert (seen[0].thresholds["classifier"], seen[0].smoothing, seen[0].heatmap, seen[0].trigger) == (
        0.3, 9, False, "manual")

    for bad in ({"thresholds": {"classifier": 1.5}}, {"smoothing": 0}, {"heatmap_opacity": -0.1},
                {"trigger": "sometimes"}):
        with pytest.raises(InvalidInputError):
            settings.update(**bad)
    assert settings.snapshot().thresholds["classifier"] == 0.3  # a refused change leaves the settings as they were


def test_inspection_request_is_taken_once() -> None:
    settings = LiveSettings()
    assert not settings.take_inspection_request()
    settings.request_inspection()
    assert settings.take_inspection_request()
    assert not settings.take_inspection_request()


def test_moving_average_over_the_last_n_values() -> None:
    average = MovingAverage(3)
    assert [average.add(v) for v in (0.0, 0.3, 0.6)] == pytest.approx([0.0, 0.15, 0.3])
    assert average.full
    assert average.add(0.9) == pytest.approx(0.6)  # 0.3, 0.6, 0.9
    average.resize(2)
    assert average.value == pytest.approx(0.75) and average.full
    average.resize(4)
    assert not average.full
    average.reset()
    assert average.value == 0.0 and not average.full


def _frame(level: int, noise: np.random.Generator | None = None) -> np.ndarray:
    frame = np.full((120, 160, 3), level, np.uint8)
    frame[30:90, 40:120] = 255 - level  # a "part"
    if noise is not None:
        frame = np.clip(frame.astype(int) + noise.integers(-2, 3, frame.shape), 0, 255).astype(np.uint8)
    return frame


def _run(trigger: PartTrigger, frames: list[np.ndarray], mode: str, window: int,
         manual_at: set[int] = frozenset()) -> list[int]:
    """Frame indices at which the trigger records, with a smoothing window of ``window`` frames."""
    average = MovingAverage(window)
    fired = []
    for index, frame in enumerate(frames):
        if trigger.observe(thumbnail(frame)):
            average.reset()
        average.add(0.0)
        if trigger.should_record(mode, average.full, index in manual_at):
            fired.append(index)
    return fired


def _two_parts() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    part_a = [_frame(30, rng) for _ in range(10)]
    moving = [np.roll(_frame(90), shift, axis=1) for shift in (60, 40, 20)]
    part_b = [_frame(90, rng) for _ in range(10)]
    return part_a + moving + part_b


def test_continuous_records_one_inspection_per_part() -> None:
    frames = _two_parts()
    fired = _run(PartTrigger(), frames, "continuous", window=4)
    assert fired == [3, 16]  # part A once its 4-frame window is full; part B once 4 frames of it in place are


def test_part_present_records_when_the_image_becomes_still() -> None:
    frames = _two_parts()
    fired = _run(PartTrigger(TriggerParams(still_frames=3)), frames, "part-present", window=1)
    assert fired == [3, 16]  # after 3 still frames of each part; never while it moves
    # A part that never stops moving is never recorded.
    shaking = [np.roll(_frame(90), 20 * (i % 2), axis=1) for i in range(12)]
    assert _run(PartTrigger(), shaking, "part-present", window=1) == []


def test_manual_records_only_on_request() -> None:
    frames = _two_parts()
    assert _run(PartTrigger(), frames, "manual", window=1) == []
    assert _run(PartTrigger(), frames, "manual", window=1, manual_at={5, 6, 20}) == [5, 6, 20]


def test_a_vibrating_part_is_recorded_in_continuous_mode_but_never_still() -> None:
    """Small motion (below the smoothing reset, above stillness): continuous records, part-present waits."""
    vibrating = [np.roll(_frame(90), 6 * (i % 2), axis=1) for i in range(12)]
    trigger = PartTrigger()
    trigger.observe(thumbnail(vibrating[0]))
    trigger.observe(thumbnail(vibrating[1]))
    assert trigger.params.still_level < trigger.motion < trigger.params.motion_level
    assert _run(PartTrigger(), vibrating, "continuous", window=4) == [3]
    assert _run(PartTrigger(), vibrating, "part-present", window=4) == []
