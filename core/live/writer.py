"""Recording live inspections off the video thread: a queue, a writer thread, retries and a spool.

The video callback only calls :meth:`InspectionWriter.submit` (never blocks). The writer thread
records through the studio's one recorder (``core.inspect.recorder``): ``prepare`` (what is kept, the
audit draw, the image), then ``commit`` (the row and its hooks). When the database is unavailable
(locked, read-only, server gone) inspections stay buffered in order and are retried; on
:meth:`InspectionWriter.close` whatever still cannot be written goes to a JSON-lines spool file in
the data folder, which the next writer replays first. Nothing is lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from core.errors import DatabaseUnavailableError
from core.inspect.engine import Inspection
from core.inspect.recorder import PendingInspection, RecordContext
from core.studio import Studio

log = logging.getLogger(__name__)
SPOOL_FOLDER = "live-spool"


@dataclass(frozen=True)
class WriterStatus:
    written: int
    waiting: int  # submitted, not yet in the database
    error: str | None  # why the last write failed, while inspections wait for the database


class InspectionWriter:
    """One writer thread per studio; thread-safe ``submit``; ``close`` flushes (see module doc)."""

    def __init__(self, studio: Studio, retry_seconds: float = 1.0) -> None:
        self.studio = studio
        self.retry_seconds = retry_seconds
        self.spool_dir = studio.settings.data_dir / SPOOL_FOLDER
        self._inbox: queue.SimpleQueue[tuple[Inspection, RecordContext] | None] = queue.SimpleQueue()
        self._pending: deque[PendingInspection] = deque()
        self._lock = threading.Lock()
        self._written = 0
        self._submitted = 0
        self._error: str | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inspection-writer", daemon=True)
        self._load_spool()
        self._thread.start()

    # --- called from any thread ------------------------------------------------------------------
    def submit(self, inspection: Inspection, context: RecordContext) -> None:
        """Queue one inspection (returns at once)."""
        if self._closed.is_set():
            raise RuntimeError("the inspection writer is closed")
        with self._lock:
            self._submitted += 1
        self._inbox.put((inspection, context))

    def status(self) -> WriterStatus:
        with self._lock:
            return WriterStatus(self._written, self._submitted - self._written, self._error)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted is written; False when the database is still unavailable."""
        deadline = time.monotonic() + timeout
        while self.status().waiting and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.status().waiting == 0

    def close(self, timeout: float = 10.0) -> int:
        """Stop accepting, write what can be written within ``timeout`` and spool the rest to disk.

        Returns how many inspections went to the spool file (0 when all reached the database).
        """
        if self._closed.is_set():
            return 0
        self.flush(timeout)
        self._closed.set()
        self._inbox.put(None)
        self._thread.join(timeout=timeout + 10.0)  # a write may be waiting on a database lock
        with self._lock:
            left = list(self._pending)
            self._pending.clear()
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                left.append(self.studio.recorder.prepare(*item))
        if left:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            path = self.spool_dir / f"pending-{uuid.uuid4().hex}.jsonl"
            path.write_text("".join(item.to_json() + "\n" for item in left))
            log.warning("database unavailable: %d inspection(s) kept in %s", len(left), path)
        return len(left)

    # --- the writer thread -----------------------------------------------------------------------
    def _load_spool(self) -> None:
        """Inspections a previous writer could not write come first."""
        if not self.spool_dir.is_dir():
            return
        for path in sorted(self.spool_dir.glob("pending-*.jsonl")):
            items = [PendingInspection.from_json(line) for line in path.read_text().splitlines() if line.strip()]
            self._pending.extend(items)
            self._submitted += len(items)
            path.unlink()

    def _run(self) -> None:
        while True:
            try:
                item = self._inbox.get(timeout=self.retry_seconds if self._pending else None)
            except queue.Empty:
                item = None
            else:
                if item is None:
                    return
                try:
                    pending = self.studio.recorder.prepare(*item)
                except Exception:  # e.g. the image store is full: say so, keep the thread alive
                    log.exception("inspection dropped: its image cannot be stored")
                    with self._lock:
                        self._submitted -= 1
                        self._error = "an inspection's image could not be stored (see the log)"
                    continue
                with self._lock:
                    self._pending.append(pending)
            self._write_pending()

    def _write_pending(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                if not self._pending:
                    self._error = None
                    return
                item = self._pending[0]
            try:
                self._write(item)
            except DatabaseUnavailableError as error:
                with self._lock:
                    self._error = str(error)
                return  # retried after retry_seconds or with the next submission
            except Exception:  # a row that can never be written (e.g. its tool was deleted)
                log.exception("inspection dropped: it cannot be written")
                with self._lock:
                    self._submitted -= 1
            else:
                with self._lock:
                    self._written += 1
            with self._lock:
                self._pending.popleft()

    def _write(self, item: PendingInspection) -> None:
        self.studio.recorder.commit(item)
