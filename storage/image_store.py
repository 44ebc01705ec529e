"""Content-addressed image files (``ab/cd/<sha256>.<ext>``) in the studio's object store.

By default the objects are files under a folder of the data dir, written atomically; with
``STUDIO_OBJECT_STORE`` they live in S3-compatible storage behind a local spool
(:mod:`storage.objects`). Reads are verified against the key's SHA-256.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from storage.files import PARTIAL_PREFIX
from storage.objects import LocalObjects, ObjectStore, digest, key_for

__all__ = ["PARTIAL_PREFIX", "ImageStore", "process_alive"]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (``psutil``: ``os.kill(pid, 0)`` would signal it on Windows)."""
    return psutil.pid_exists(pid)


class ImageStore:
    """Stores image bytes under their SHA-256; the same content is stored once.

    ``root`` is the local folder of this store (its files, or with a remote object store the name
    that tells stores apart); ``objects`` is where the bytes go (default: the folder ``root``).
    """

    def __init__(self, root: Path, objects: ObjectStore | None = None) -> None:
        self.root = Path(root)
        self.objects = objects if objects is not None else LocalObjects(self.root)

    @property
    def is_local(self) -> bool:
        return isinstance(self.objects, LocalObjects)

    @staticmethod
    def digest(data: bytes) -> str:
        return digest(data)

    @staticmethod
    def key_for(sha256: str, ext: str) -> str:
        """The relative key of content ``sha256`` with extension ``ext`` (no dot)."""
        return key_for(sha256, ext)

    def path(self, key: str) -> Path:
        """The local file of ``key`` (a local store only)."""
        if not isinstance(self.objects, LocalObjects):
            raise ValueError("this store keeps its objects in an object store, not in files")
        return self.objects.path(key)

    def viewable(self, key: str) -> str | bytes:
        """What a page shows for ``key``: the file's path in a local store (served from disk), else the
        verified bytes from the object store."""
        return str(self.objects.path(key)) if isinstance(self.objects, LocalObjects) else self.read(key)

    def put(self, data: bytes, ext: str) -> tuple[str, str]:
        """Store ``data``; returns ``(key, sha256)``. Idempotent for the same content."""
        key = self.objects.put(data, ext)
        return key, key.rsplit("/", 1)[-1].split(".", 1)[0]

    def read(self, key: str) -> bytes:
        """The bytes of ``key``, verified (ObjectIntegrityError when damaged, ObjectMissingError when gone)."""
        return self.objects.get(key)

    def exists(self, key: str) -> bool:
        return self.objects.exists(key)

    def delete(self, key: str) -> None:
        self.objects.delete(key)

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
