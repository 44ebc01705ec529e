"""A demo stream without a camera: a tool's images played as 640 x 480 video.

Each image slides in from the right over a few frames (motion), then holds still (a part present),
like parts on a conveyor, so the triggers behave as they would on a real line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from core.images import decode_image
from core.studio import Studio
from core.tools import require_tool
from storage import repository as repo

WIDTH, HEIGHT = 640, 480
BACKGROUND = 40


def demo_images(studio: Studio, tool_name: str, limit: int = 40) -> list[np.ndarray]:
    """Up to ``limit`` of the tool's sample images (RGB), alternating classes, for the demo stream."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        samples = repo.list_samples(session, tool.id, limit=limit * 4)
    by_label: dict[str, list[str]] = {}
    for sample in samples:
        by_label.setdefault(sample.label, []).append(sample.image_key)
    keys: list[str] = []
    while len(keys) < limit and any(by_label.values()):
        for label in sorted(by_label):
            if by_label[label]:
                keys.append(by_label[label].pop(0))
    return [decode_image(studio.images.read(key)).rgb for key in keys[:limit]]


def place(image: np.ndarray, offset_x: int = 0, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """``image`` scaled to 80 % of the frame height, centred (shifted by ``offset_x``) on a dark frame."""
    frame = np.full((height, width, 3), BACKGROUND, np.uint8)
    side = int(height * 0.8)
    scale = side / max(image.shape[:2])
    part = cv2.resize(image, (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA)
    ph, pw = part.shape[:2]
    x0, y0 = (width - pw) // 2 + offset_x, (height - ph) // 2
    left, right = max(0, x0), min(width, x0 + pw)
    if right > left:
        frame[y0:y0 + ph, left:right] = part[:, left - x0:right - x0]
    return frame


def placed_roi(part_width: int, part_height: int, width: int = WIDTH, height: int = HEIGHT) -> list[float]:
    """The region of interest ``[x0, y0, x1, y1]`` (fractions of the frame) where :func:`place` puts a
    still part of this size: the demo project's ROI, so the demo stream judges the part, not the frame."""
    side = int(height * 0.8)
    scale = side / max(part_width, part_height)
    pw, ph = max(1, int(part_width * scale)), max(1, int(part_height * scale))
    x0, y0 = (width - pw) // 2, (height - ph) // 2
    return [round(v, 4) for v in (x0 / width, y0 / height, (x0 + pw) / width, (y0 + ph) / height)]


def demo_frames(images: list[np.ndarray], hold: int = 20, slide: int = 6, loop: bool = True) -> Iterator[np.ndarray]:
    """Frames of each image sliding in over ``slide`` frames, then still for ``hold`` frames."""
    if not images:
        raise ValueError("the demo stream needs at least one image")
    while True:
        for image in images:
            for step in range(slide, 0, -1):
                yield place(image, offset_x=int(WIDTH * step / slide))
            still = place(image)
            for _ in range(hold):
                yield still
        if not loop:
            return


def write_y4m(path: Path, frames: Iterable[np.ndarray], fps: int) -> None:
    """A raw YUV4MPEG2 (4:2:0) video of RGB frames, as Chromium's fake camera reads it
    (``--use-file-for-fake-video-capture``)."""
    with open(path, "wb") as out:
        for n, rgb in enumerate(frames):
            height, width = rgb.shape[:2]
            if n == 0:
                out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # Y plane, then U and V at half size
            out.write(b"FRAME\n")
            out.write(yuv.tobytes())
