"""Content-addressed image files: ``<root>/ab/cd/<sha256>.<ext>``, written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import psutil

PARTIAL_PREFIX = ".tmp-"  # temporary files are named .tmp-<pid>-<random>.part


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (``psutil``: ``os.kill(pid, 0)`` would signal it on Windows)."""
    return psutil.pid_exists(pid)


class ImageStore:
    """Stores image bytes under their SHA-256; the same content is stored once.

    A write goes to a temporary file in the target folder, is flushed to disk and renamed into
    place, so a crash never leaves a half-written file under a final name.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @staticmethod
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    @staticmethod
    def key_for(sha256: str, ext: str) -> str:
        """The relative key of content ``sha256`` with extension ``ext`` (no dot)."""
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext.lower().lstrip('.')}"

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"image key outside the store: {key!r}")
        return path

    def put(self, data: bytes, ext: str) -> tuple[str, str]:
        """Store ``data``; returns ``(key, sha256)``. Idempotent for the same content."""
        sha256 = self.digest(data)
        key = self.key_for(sha256, ext)
        target = self.path(key)
        if target.exists():
            try:  # the file is in use again: a garbage collection's grace period starts anew
                os.utime(target)
            except OSError:
                pass
            if target.exists():
                return key, sha256
        target.parent.mkdir(parents=True, exist_ok=True)
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
        return key, sha256

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def remove_partial_files(self) -> int:
        """Delete temporary files left by a writer process that died (killed mid-write); returns how many.

        Files of a process that still runs are kept: it may be writing them right now.
        """
        removed = 0
        if not self.root.exists():
            return 0
        for path in self.root.rglob(f"{PARTIAL_PREFIX}*.part"):
            pid = path.name[len(PARTIAL_PREFIX):].split("-", 1)[0]
            if not pid.isdigit() or not process_alive(int(pid)):
                path.unlink(missing_ok=True)
                removed += 1
        return removed
