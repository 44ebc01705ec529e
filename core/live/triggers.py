"""When to record an inspection: continuous, part-present or manual.

Each tool watches a small grey thumbnail of its ROI. *Motion* is the mean absolute difference to the
previous frame, *change* the difference to the thumbnail of the last recorded part (both in [0, 1]).

- continuous: the verdict is shown on every frame; one inspection is recorded per part, as soon as
  the smoothing window holds N frames of a new part (a change since the last recorded part);
- part-present: recorded once the image is still (motion below ``still_level`` for ``still_frames``
  frames) after a change;
- manual: recorded when the operator presses Inspect.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

THUMBNAIL = 32


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """``(32, 32)`` float32 grey thumbnail in [0, 1] of an RGB image."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@dataclass
class TriggerParams:
    change_level: float = 0.04  # a new part: thumbnail differs this much from the last recorded one
    motion_level: float = 0.02  # motion that restarts the smoothing window (the part moved / changed)
    still_level: float = 0.01  # part-present: below this motion the image is still
    still_frames: int = 3


class PartTrigger:
    """Decides, frame by frame, whether this frame's verdict becomes a recorded inspection."""

    def __init__(self, params: TriggerParams | None = None) -> None:
        self.params = params or TriggerParams()
        self._previous: np.ndarray | None = None
        self._recorded: np.ndarray | None = None
        self._still = 0
        self.motion = 0.0
        self.change = 1.0

    def observe(self, thumb: np.ndarray) -> bool:
        """Update motion and change with this frame's thumbnail; True when the scene moved a lot
        (the caller restarts its smoothing window)."""
        self.motion = 1.0 if self._previous is None else float(np.abs(thumb - self._previous).mean())
        self.change = 1.0 if self._recorded is None else float(np.abs(thumb - self._recorded).mean())
        self._previous = thumb
        self._still = self._still + 1 if self.motion < self.params.still_level else 0
        return self.motion >= self.params.motion_level

    @property
    def new_part(self) -> bool:
        return self.change >= self.params.change_level

    def should_record(self, mode: str, window_full: bool, manual_request: bool) -> bool:
        """Whether to record now, given the trigger ``mode`` and the smoothing window state."""
        if mode == "manual":
            fire = manual_request
        elif mode == "part-present":
            fire = self.new_part and self._still >= self.params.still_frames
        else:
            fire = self.new_part and window_full
        if fire:
            self._recorded = self._previous
        return fire
