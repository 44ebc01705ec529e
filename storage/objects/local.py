"""Objects as files under a folder: ``<root>/ab/cd/<sha256>.<ext>``, written via temp file + rename."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from storage.files import PARTIAL_PREFIX, write_atomically
from storage.objects.base import ObjectMissingError, ObjectStore, sha256_of_key, verified


class LocalObjects(ObjectStore):
    """A folder of content-addressed files; a crash never leaves a half-written file under a final name."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"object key outside the store: {key!r}")
        return path

    def put_key(self, key: str, data: bytes) -> None:
        sha256_of_key(key)
        target = self.path(key)
        if target.exists():
            try:  # the file is in use again: a garbage collection's grace period starts anew
                os.utime(target)
            except OSError:
                pass
            if target.exists():
                return
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data)

    def get(self, key: str) -> bytes:
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError as error:
            raise ObjectMissingError(f"object {key} is missing in {self.root}") from error
        return verified(key, data)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        if not self.root.exists():
            return
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(PARTIAL_PREFIX):
                yield path.relative_to(self.root).as_posix()

    def modified_at(self, key: str) -> datetime | None:
        try:
            return datetime.fromtimestamp(self.path(key).stat().st_mtime, UTC)
        except OSError:
            return None

    def describe(self) -> str:
        return f"folder {self.root}"
