"""Frames from a camera stream, shared between the video thread and the page script.

The video callback of the WebRTC widget runs in its own thread; it only calls
:meth:`LatestFrame.put`. The page reads with :meth:`LatestFrame.latest` or waits for a newer
frame with :meth:`LatestFrame.wait_newer` (burst capture). Frames are never queued: a new frame
replaces the previous one, so a slow reader never makes the stream lag.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import av
import cv2
import numpy as np

from core.roi import roi_pixels

ROI_COLOUR = (0, 200, 255)  # RGB


@dataclass(frozen=True)
class Frame:
    """One camera frame: ``(H, W, 3)`` RGB pixels, its sequence number and arrival time (monotonic s)."""

    rgb: np.ndarray
    number: int
    at: float


class LatestFrame:
    """A lock-protected holder of the newest frame of one camera stream (one per browser session)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._frame: Frame | None = None
        self._count = 0

    def put(self, rgb: np.ndarray) -> None:
        """Keep ``rgb`` as the newest frame (called from the video thread; never blocks for long)."""
        with self._condition:
            self._count += 1
            self._frame = Frame(rgb, self._count, time.monotonic())
            self._condition.notify_all()

    def latest(self, max_age_s: float | None = None) -> Frame | None:
        """The newest frame, or None when there is none (or it is older than ``max_age_s``)."""
        with self._condition:
            frame = self._frame
        if frame is None or (max_age_s is not None and time.monotonic() - frame.at > max_age_s):
            return None
        return frame

    def wait_newer(self, number: int, timeout_s: float) -> Frame | None:
        """The first frame with a sequence number above ``number``; None after ``timeout_s``."""
        with self._condition:
            self._condition.wait_for(lambda: self._frame is not None and self._frame.number > number, timeout_s)
            frame = self._frame
        return frame if frame is not None and frame.number > number else None


def draw_roi(rgb: np.ndarray, roi: Sequence[float] | None) -> np.ndarray:
    """A copy of ``rgb`` with the region of interest outlined (the frame itself when ``roi`` is None)."""
    if roi is None:
        return rgb
    left, top, right, bottom = roi_pixels(roi, rgb.shape[1], rgb.shape[0])
    thickness = max(2, rgb.shape[1] // 320)
    outlined = np.ascontiguousarray(rgb).copy()
    cv2.rectangle(outlined, (left, top), (right - 1, bottom - 1), ROI_COLOUR, thickness)
    return outlined


class FrameGrabber:
    """The video callback of a camera widget: keeps each frame in ``holder`` and returns the preview
    with the ROI outlined. Runs in the video thread; touches nothing but ``holder``."""

    def __init__(self, holder: LatestFrame, roi: Sequence[float] | None) -> None:
        self.holder = holder
        self.roi = list(roi) if roi else None

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        rgb = frame.to_ndarray(format="rgb24")
        self.holder.put(rgb)
        return av.VideoFrame.from_ndarray(draw_roi(rgb, self.roi), format="rgb24")
