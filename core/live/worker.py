"""Inference off the video thread: the camera's pace for the video, the models' pace for verdicts.

The video callback hands each frame to :meth:`InferenceWorker.process`, which puts it in a one-frame
mailbox and returns at once with the frame annotated with the newest verdicts; a worker thread judges
the newest frame in the mailbox. A frame that arrives while the previous one still waits replaces it:
frames are dropped, never queued. Torch releases the GIL while it computes, so inference runs on the
second core while the first one decodes and encodes the video; the models of a frame share their
backbone's pass (``engine.judge``, ``shared_passes``), so inference keeps to that one core.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from core.live.processor import FrameProcessor

log = logging.getLogger(__name__)


class InferenceWorker:
    """A thread judging the newest frame with ``processor`` (see the module doc)."""

    def __init__(self, processor: FrameProcessor) -> None:
        self.processor = processor
        self.received = 0
        self.dropped = 0  # frames replaced in the mailbox before the worker took them
        self.overlay_failures = 0  # frames sent without the overlay because drawing it failed
        self._mailbox: tuple[np.ndarray, float] | None = None
        self._wake = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="live-inference", daemon=True)
        self._thread.start()

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Queue ``frame`` for judging (replacing an unjudged one) and return it annotated with the
        newest verdicts, without waiting for the models."""
        with self._wake:
            if self._mailbox is not None:
                self.dropped += 1
            self._mailbox = (frame, self.processor.now())
            self.received += 1
            self._wake.notify()
        try:
            return self.processor.annotate(frame)
        except Exception:  # the stream must not stop (streamlit-webrtc ends it on an error): the raw frame
            self.overlay_failures += 1
            if self.overlay_failures == 1:
                log.exception("the live overlay failed; frames go out without it until it works again")
            return frame

    def idle(self) -> bool:
        """Whether the worker has nothing to judge and is not judging."""
        with self._wake:
            return self._mailbox is None and not self._busy

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the frame it is judging, if any)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._mailbox is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                (frame, arrived), self._mailbox = self._mailbox, None
                self._busy = True
            try:
                self.processor.judge(frame, arrived)
            except Exception:  # a bad frame must not stop live inspection; the log says why
                log.exception("live inference failed on a frame")
            finally:
                with self._wake:
                    self._busy = False
