"""Which part of an image a tool judges: the one ROI rule of every path.

A tool's region of interest is stored as fractions of the camera frame it was drawn on
(``core.roi``). Camera frames and photos of the camera's shape are cropped to it; images that are
crops already (training samples, the camera's own ROI captures, photos of a single part) are judged
whole. An image counts as a frame when its width:height matches the frame's (the ROI's
``roi_frame`` setting, 4:3 unless set) within 2 %; when the ROI itself has the frame's shape, only an
image at least as large as that frame is a frame. Callers may force either choice (``crop`` /
``whole``), e.g. ``predict --roi whole``.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.roi import roi_pixels

ROI_CHOICES = ("auto", "crop", "whole")
DEFAULT_FRAME = (640, 480)
SHAPE_TOLERANCE = 0.02


def _same_shape(a: float, b: float) -> bool:
    return abs(a - b) <= SHAPE_TOLERANCE * b


def is_frame(width: int, height: int, roi: Sequence[float], frame: tuple[int, int] = DEFAULT_FRAME) -> bool:
    """Whether a ``width`` x ``height`` image is a whole camera frame (to crop) rather than a crop."""
    frame_w, frame_h = frame
    if not _same_shape(width / height, frame_w / frame_h):
        return False
    x0, y0, x1, y1 = roi
    if _same_shape((x1 - x0) * frame_w / ((y1 - y0) * frame_h), frame_w / frame_h):
        return width >= frame_w and height >= frame_h
    return True


def region(width: int, height: int, roi: Sequence[float] | None, choice: str = "auto",
           frame: tuple[int, int] = DEFAULT_FRAME) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` of the image a tool judges under ``choice`` (see module doc)."""
    if choice not in ROI_CHOICES:
        raise ValueError(f"ROI choice must be one of {', '.join(ROI_CHOICES)}")
    crop = roi is not None and (choice == "crop" or (choice == "auto" and is_frame(width, height, roi, frame)))
    return roi_pixels(roi if crop else None, width, height)
