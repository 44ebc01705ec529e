"""A remote object store behind a local spool: failed uploads are kept on disk and retried.

Two ways to write. Direct (the default, for model artifacts that must be in the store before anyone is
told about them): ``put`` uploads while the remote answers; once an upload fails, objects are written
atomically into the spool folder (no writer waits on a store that is down), and the uploader's first
upload that succeeds sends writers straight to the remote again while it drains the backlog (keys are
content-addressed: order does not matter). Write-behind (store-and-forward, for a station's images and
maps): every ``put`` lands in the spool and returns, so a store that is slow (not only one that refuses)
never holds up an inspection; the uploader sends each object as it arrives. Either way a background
uploader sends spooled objects with exponential backoff while the store is down, then removes them
from the spool. Reads look in the spool first, so a spooled object is readable before it is uploaded.
The spool is a folder of complete files, so a process killed at any moment loses nothing: the next start
replays it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime

from storage.objects.base import ObjectMissingError, ObjectStore, ObjectStoreUnavailableError
from storage.objects.local import LocalObjects

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


class SpooledObjects(ObjectStore):
    """``remote`` with ``spool`` (a local folder) for the objects it could not take yet."""

    def __init__(self, remote: ObjectStore, spool: LocalObjects, start: bool = True,
                 write_behind: bool = False) -> None:
        self.remote, self.spool, self.write_behind = remote, spool, write_behind
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _waiting
        self._pass = threading.Lock()  # one upload pass at a time
        self._waiting: set[str] = set()  # whole files in the spool, not yet uploaded
        self._replayed = False  # what an earlier process left is listed by the first pass, off the caller's thread
        self.last_error: str | None = None
        self._remote_up = True  # False from a failed upload until one succeeds
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def start(self) -> None:
        """Start the background uploader (it replays what an earlier process left in the spool)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="object-uploader", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def put_key(self, key: str, data: bytes) -> None:
        if self._remote_up and not self.write_behind:
            try:
                self.remote.put_key(key, data)
                return
            except ObjectStoreUnavailableError as error:
                self._remote_up, self.last_error = False, str(error)
                log.warning("object store unreachable; spooling %s locally", key)
        self.spool.put_key(key, data)
        with self._lock:
            self._waiting.add(key)  # once its file is whole: the uploader sends only what waits
        self._wake.set()

    def get(self, key: str) -> bytes:
        try:
            return self.spool.get(key)
        except ObjectMissingError:
            return self.remote.get(key)

    def exists(self, key: str) -> bool:
        return self.spool.exists(key) or self.remote.exists(key)

    def delete(self, key: str) -> None:
        self.spool.delete(key)
        self.remote.delete(key)

    def keys(self) -> Iterator[str]:
        spooled = set(self.spool.keys())
        yield from sorted(spooled)
        yield from (k for k in self.remote.keys() if k not in spooled)

    def modified_at(self, key: str) -> datetime | None:
        return self.spool.modified_at(key) or self.remote.modified_at(key)

    def pending(self) -> int:
        return len(self._waiting)

    def describe(self) -> str:
        return self.remote.describe()

    def drain(self, timeout: float = 60.0) -> bool:
        """Upload the spool now; wait until it is empty (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while self.upload_spooled() > 0:
            if time.monotonic() >= deadline:
                return False
            self._stop.wait(0.2)
        return True

    def upload_spooled(self) -> int:
        """Upload every spooled object once; returns how many are still waiting (raises nothing)."""
        self._upload_pass()
        return len(self._waiting)

    def _upload_pass(self) -> int:
        """One pass over the waiting objects (the spool folder is listed once, by the first pass: listing it per pass
        would walk every ``ab/cd`` folder it ever had); returns how many it uploaded (it stops at the first
        failure)."""
        uploaded = 0
        with self._pass:
            if not self._replayed:
                self._replay()
            with self._lock:
                waiting = sorted(self._waiting)
            for key in waiting:
                try:
                    data = self.spool.get(key)
                except ObjectMissingError:  # gone meanwhile
                    self._done(key)
                    continue
                except OSError:  # damaged in the spool: kept for the store check to report, never uploaded
                    log.error("spooled object %s is damaged; not uploaded", key)
                    continue
                try:
                    self.remote.put_key(key, data)
                except ObjectStoreUnavailableError as error:
                    self._remote_up, self.last_error = False, str(error)
                    break
                self._remote_up = True
                self.spool.delete(key)
                self._done(key)
                uploaded += 1
        if not self._waiting:
            self.last_error = None
        return uploaded

    def _replay(self) -> None:
        """Count what an earlier process left in the spool as waiting (the one listing of the folder)."""
        left = list(self.spool.keys())
        with self._lock:
            self._waiting.update(left)
        self._replayed = True
        if left:
            log.info("replaying %d spooled objects", len(left))

    def _done(self, key: str) -> None:
        with self._lock:
            self._waiting.discard(key)

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stop.is_set():
            self._wake.clear()
            if self._replayed and not self._waiting:
                self._wake.wait()  # a put that spools wakes it
                continue
            try:
                uploaded = self._upload_pass()
            except Exception:  # the uploader never dies
                log.exception("object uploader failed")
                uploaded = 0
            if self._remote_up and uploaded:  # more may have arrived meanwhile: go on at once
                backoff = FIRST_BACKOFF_S
                continue
            if self._remote_up:  # nothing uploadable yet (a file still being written, or damaged)
                self._wake.wait(backoff)
            else:  # the store refused: back off; writers spool meanwhile without waking this
                self._stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
