"""A durable, ordered spool of inspections waiting for the database: one file per inspection.

Each :class:`~core.inspect.recorder.PendingInspection` is written to a temporary file, flushed to disk
and renamed to ``<number>-<record key>.json`` (the folder is synced too), so a process killed at any
moment leaves only complete entries; the number keeps the order across restarts. An entry is removed
only after its row is committed, and every entry carries its ``record_key``: a replay after a crash
between the commit and the removal finds the key already written and skips it (exactly once).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from core.inspect.recorder import PendingInspection
from storage.files import PARTIAL_PREFIX, sync_folder, write_atomically


class Journal:
    """The spool folder ``folder``; thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        names = self._names()
        self._count = len(names)
        self._next = int(names[-1].split("-", 1)[0]) + 1 if names else 1

    def _names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.suffix == ".json" and not p.name.startswith(
            PARTIAL_PREFIX))

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def append(self, pending: PendingInspection) -> Path:
        """Write ``pending`` (which must have a ``record_key``) durably after every earlier entry."""
        if not pending.record_key:
            raise ValueError("a spooled inspection needs a record_key (its idempotency key)")
        data = pending.to_json().encode()
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.folder / f"{self._next:012d}-{pending.record_key}.json"
            write_atomically(target, data)
            sync_folder(self.folder)
            self._next += 1
            self._count += 1
        return target

    def entries(self, limit: int = 1000) -> list[tuple[Path, PendingInspection]]:
        """The oldest ``limit`` complete entries, oldest first."""
        with self._lock:
            names = self._names()[:limit]
        return [(self.folder / name, PendingInspection.from_json((self.folder / name).read_text()))
                for name in names]

    def remove(self, path: Path) -> None:
        """Forget an entry whose row is committed."""
        with self._lock:
            if path.exists():
                path.unlink()
                sync_folder(self.folder)
                self._count -= 1

    def set_aside(self, path: Path, why: str) -> Path:
        """Move an entry that can never be written (e.g. its tool was deleted) to ``rejected/``, with the
        reason beside it: kept for a person, out of the replay's way."""
        rejected = self.folder / "rejected"
        rejected.mkdir(parents=True, exist_ok=True)
        target = rejected / path.name
        with self._lock:
            os.replace(path, target)
            target.with_suffix(".why.txt").write_text(why)
            self._count -= 1
        return target

