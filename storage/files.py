"""Files written whole or not at all: a temporary file beside the target, fsynced, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PARTIAL_PREFIX = ".tmp-"  # temporary files are named .tmp-<pid>-<random>.part


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that a crash leaves either the old state or the whole new file, never a
    half-written one under ``target``'s name (a crash can leave a ``PARTIAL_PREFIX`` file, named by the pid)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{PARTIAL_PREFIX}{os.getpid()}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync_folder(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
