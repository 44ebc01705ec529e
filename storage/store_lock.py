"""A shared / exclusive lock over the content-addressed stores (images, thumbnails, masks).

Why: the stores deduplicate by content, so two writers (two imports, an import and a review verdict)
may rely on the same file. A writer holds the lock *shared* from the moment it puts a file until the
row that references it is committed (or until it gives up); a cleaner (``store check --repair`` and an
import that wants to remove the files it wrote but did not record) holds it *exclusive* while it looks
for rows and deletes unreferenced files. So while a cleaner deletes, no writer is between "file written"
and "row committed", and "no row references this file" is then the truth.

The locks are ``portalocker``'s (``flock`` on Linux and macOS, ``LockFileEx`` on Windows): a lock
belongs to an open file, so two threads of one process that each open the lock file conflict like two
processes do, and the system drops a killed process's lock (a ``kill -9`` never leaves the store
locked). ``filelock`` (the training lock's library) has no shared mode to build this on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import portalocker

LOCK_NAME = "store.lock"


def _open(locks_dir: Path) -> IO[bytes]:
    locks_dir.mkdir(parents=True, exist_ok=True)
    return open(locks_dir / LOCK_NAME, "a+b")  # noqa: SIM115 (closed by the callers below)


@contextmanager
def shared(locks_dir: Path) -> Iterator[None]:
    """Held by a writer while it has files in the store that no committed row references yet."""
    handle = _open(locks_dir)
    try:
        portalocker.lock(handle, portalocker.LOCK_SH)
        yield
    finally:
        handle.close()  # closing releases the lock


@contextmanager
def exclusive(locks_dir: Path, timeout: float = 0.0) -> Iterator[bool]:
    """Yields True when the store was locked exclusively (no writer in flight), False when writers
    still held it after ``timeout`` seconds (then the caller must not delete anything)."""
    handle = _open(locks_dir)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                portalocker.lock(handle, portalocker.LOCK_EX | portalocker.LOCK_NB)
                got = True
                break
            except portalocker.exceptions.LockException:
                if time.monotonic() >= deadline:
                    got = False
                    break
                time.sleep(0.05)
        yield got
    finally:
        handle.close()
