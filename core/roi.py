"""Regions of interest: the part of a camera frame a tool inspects.

A ROI is stored on the tool as ``[x0, y0, x1, y1]`` in fractions of the frame's width and height
(0..1, top-left origin), so it survives a change of camera resolution. ``None`` means the whole frame.
Capture, training and inference all crop with :func:`crop_to_roi`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import InvalidInputError

MIN_SIDE_FRACTION = 0.02


def validate_roi(roi: Sequence[float] | None) -> list[float] | None:
    """A clean ``[x0, y0, x1, y1]`` in [0, 1] with x0 < x1 and y0 < y1, or ``None``."""
    if roi is None:
        return None
    if len(roi) != 4:
        raise InvalidInputError("a region of interest is four numbers: x0, y0, x1, y1 (fractions of the frame)")
    x0, y0, x1, y1 = (min(1.0, max(0.0, float(v))) for v in roi)
    if x1 - x0 < MIN_SIDE_FRACTION or y1 - y0 < MIN_SIDE_FRACTION:
        raise InvalidInputError("the region of interest is too small; draw a larger rectangle")
    return [x0, y0, x1, y1]


def roi_pixels(roi: Sequence[float] | None, width: int, height: int) -> tuple[int, int, int, int]:
    """The ROI as integer pixel bounds ``(x0, y0, x1, y1)`` of a ``width`` x ``height`` frame."""
    if roi is None:
        return 0, 0, width, height
    x0, y0, x1, y1 = roi
    left, top = int(round(x0 * width)), int(round(y0 * height))
    right, bottom = max(left + 1, int(round(x1 * width))), max(top + 1, int(round(y1 * height)))
    return left, top, min(right, width), min(bottom, height)


def crop_to_roi(image: np.ndarray, roi: Sequence[float] | None) -> np.ndarray:
    """The ROI of an ``(H, W, C)`` image, as a view (no copy); the whole image when ``roi`` is None."""
    left, top, right, bottom = roi_pixels(roi, image.shape[1], image.shape[0])
    return image[top:bottom, left:right]
