"""A station's inspections while the database is away: spooled on local disk, replayed in order.

:meth:`DatabaseSpool.record` commits a frame's inspections through the studio's recorder (the outbox
event commits with each). When the database is unavailable it writes them to a :class:`Journal`
instead and returns at once, so the PLC still gets its verdict; while anything waits in the journal,
later inspections join it (their order is kept). A replay thread commits the journal oldest first when
the database answers again (backing off while it does not); each entry's ``record_key`` makes a replay
after a crash write it exactly once. MQTT / webhook outputs receive the spooled inspections' events
once they are written (their outbox rows commit with them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from core.errors import DatabaseUnavailableError
from core.inspect.journal import Journal
from core.inspect.recorder import PendingInspection, RecordedInspection
from core.studio import Studio

log = logging.getLogger("studio.line.db_spool")
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


class DatabaseSpool:
    """Commit or spool (see the module doc); ``on_written`` is called for each replayed inspection."""

    def __init__(self, studio: Studio, folder: Path,
                 on_written: Callable[[RecordedInspection], None] | None = None) -> None:
        self.studio = studio
        self.journal = Journal(folder)
        self.on_written = on_written or (lambda recorded: None)
        self.last_error: str | None = None  # why the database refused the last write, while entries wait
        self.written = 0  # replayed from the journal by this process
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self) -> int:
        return len(self.journal)

    def record(self, pendings: list[PendingInspection]) -> list[RecordedInspection | None]:
        """Commit each inspection in order, or spool it (None) when the database is away or earlier
        inspections still wait in the journal."""
        results: list[RecordedInspection | None] = []
        for pending in pendings:
            if not self.pending():
                try:
                    results.append(self.studio.recorder.commit(pending))
                    continue
                except DatabaseUnavailableError as error:
                    self.last_error = str(error)
                    log.warning("database unavailable; spooling inspections locally: %s", error)
            self.journal.append(pending)
            results.append(None)
            self._wake.set()
        return results

    def replay(self) -> int:
        """Commit the journal oldest first until it is empty or the database refuses; returns how many
        entries still wait."""
        for path, pending in self.journal.entries():  # a batch; the thread comes back for the rest
            if self._stop.is_set():  # stopping: the rest waits for the next start
                break
            try:
                recorded = self.studio.recorder.commit_once(pending)
            except DatabaseUnavailableError as error:
                self.last_error = str(error)
                break
            except Exception as error:  # noqa: BLE001 - never written (e.g. its tool was deleted): set aside
                kept = self.journal.set_aside(path, str(error))
                log.error("spooled inspection %s cannot be written (%s); kept in %s", pending.record_key, error, kept)
                continue
            self.journal.remove(path)
            self.written += 1
            self.last_error = None
            if recorded is not None:  # None: written before a crash, only its entry was left
                self.on_written(recorded)
        return self.pending()

    def problem(self) -> str | None:
        """What the station's heartbeat says about its spool (None while it is empty)."""
        waiting = self.pending()
        if not waiting:
            return None
        if self.last_error:
            return (f"database unreachable ({self.last_error[:200]}): {waiting} inspections spooled locally, "
                    "still inspecting; they are written in order when it answers")
        return f"writing {waiting} spooled inspections to the database"

    def start(self) -> None:
        """Start the replay thread (it first replays what an earlier process left)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="db-spool", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stop.is_set():
            self._wake.clear()
            if not self.pending():
                self._wake.wait()
                continue
            try:
                left = self.replay()
            except Exception:  # noqa: BLE001 - the replayer never dies (e.g. an unreadable folder)
                log.exception("spool replay failed")
                left = 1
            if left == 0 or self.last_error is None:  # empty, or a batch done with more to come
                backoff = FIRST_BACKOFF_S
                continue
            self._stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
