"""Frame sources of a headless station, read through OpenCV in their own thread.

``SRC`` is a USB camera index (``0``), an RTSP / HTTP camera URL, a video file or a folder of images
(the last two loop, for tests and demos). The grabber always keeps only the newest frame; when the
camera drops it says so (``connected`` false, ``error``) and reconnects with back-off.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("studio.line.source")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
OPEN_TIMEOUT_MS = 3000
READ_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray  # (H, W, 3) uint8
    number: int
    at: float  # time.monotonic() when grabbed


def describe(source: str) -> str:
    """What kind of source ``source`` is: camera, stream, video or folder."""
    if source.isdigit():
        return "camera"
    if "://" in source:
        return "stream"
    return "folder" if Path(source).is_dir() else "video"


class FrameGrabber(threading.Thread):
    """Grabs frames continuously; ``latest()`` returns the newest one (or None)."""

    def __init__(self, source: str, fps: float = 10.0) -> None:
        super().__init__(name="grabber", daemon=True)
        self.source, self.kind, self.fps = source, describe(source), fps
        self.connected = False
        self.error: str | None = None
        self.frames = 0
        self._latest: Frame | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.new_frame = threading.Condition()

    def latest(self) -> Frame | None:
        with self._lock:
            return self._latest

    def stop(self) -> None:
        self._halt.set()

    def _publish(self, rgb: np.ndarray) -> None:
        self.frames += 1
        frame = Frame(rgb, self.frames, time.monotonic())
        with self._lock:
            self._latest = frame
        with self.new_frame:
            self.new_frame.notify_all()

    def _fail(self, message: str) -> None:
        if self.connected or self.error != message:
            log.error("source %s: %s", self.source, message)
        self.connected, self.error = False, message

    def run(self) -> None:
        delay = 0.5
        while not self._halt.is_set():
            try:
                ok = self._run_folder() if self.kind == "folder" else self._run_capture()
            except Exception as error:  # never let the grabber die
                self._fail(f"camera error: {error}")
                ok = False
            if ok:
                delay = 0.5
            self._halt.wait(delay)
            delay = min(10.0, delay * 2)

    def _run_folder(self) -> bool:
        files = sorted(p for p in Path(self.source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        images = []
        for path in files:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is not None:
                images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not images:
            self._fail(f"no readable image in folder {self.source}")
            return False
        self.connected, self.error = True, None
        index = 0
        while not self._halt.is_set():
            self._publish(images[index % len(images)])
            index += 1
            self._halt.wait(1.0 / self.fps)
        return True

    def _open(self) -> cv2.VideoCapture:
        if self.kind == "camera":
            return cv2.VideoCapture(int(self.source))
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        return cv2.VideoCapture(self.source, cv2.CAP_ANY, params)

    def _run_capture(self) -> bool:
        capture = self._open()
        if not capture.isOpened():
            self._fail(f"cannot open {self.kind} {self.source!r} (not answering, or not a video)")
            return False
        self.connected, self.error = True, None
        log.info("source %s opened", self.source)
        pace = 1.0 / (capture.get(cv2.CAP_PROP_FPS) or self.fps) if self.kind == "video" else 0.0
        try:
            while not self._halt.is_set():
                ok, bgr = capture.read()
                if not ok or bgr is None:
                    if self.kind == "video" and self.frames:  # loop a file
                        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        ok, bgr = capture.read()
                    if not ok or bgr is None:
                        self._fail(f"{self.kind} {self.source!r} stopped sending frames; reconnecting")
                        return False
                self._publish(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                if pace:
                    self._halt.wait(pace)
        finally:
            capture.release()
        return True
