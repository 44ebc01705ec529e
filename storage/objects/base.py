"""The object store interface: content-addressed keys ``ab/cd/<sha256>.<ext>``, verified on read."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime


class ObjectMissingError(FileNotFoundError):
    """No object under this key."""


class ObjectIntegrityError(OSError):
    """The bytes read do not hash to the key's SHA-256: the object is damaged and is never served."""


class ObjectStoreUnavailableError(OSError):
    """The object store cannot be reached (network, server down, credentials refused)."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_for(sha256: str, ext: str) -> str:
    """The key of content ``sha256`` with extension ``ext`` (no dot)."""
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext.lower().lstrip('.')}"


def sha256_of_key(key: str) -> str:
    """The SHA-256 a key names; ValueError for a key that is not content-addressed."""
    parts = key.split("/")
    sha = parts[-1].split(".", 1)[0]
    if len(parts) != 3 or len(sha) != 64 or parts[0] != sha[:2] or parts[1] != sha[2:4] \
            or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"not a content-addressed key: {key!r}")
    return sha


def verified(key: str, data: bytes) -> bytes:
    """``data`` when it hashes to ``key``'s SHA-256; ObjectIntegrityError otherwise."""
    found = digest(data)
    if found != sha256_of_key(key):
        raise ObjectIntegrityError(f"object {key} is damaged: its content hashes to {found[:12]}..., "
                                   "not to its key; it is not served")
    return data


class ObjectStore(ABC):
    """Content-addressed bytes. ``put`` is idempotent and atomic (an object is visible only complete);
    ``get`` verifies the hash (ObjectIntegrityError) and raises ObjectMissingError for no object."""

    def put(self, data: bytes, ext: str = "bin") -> str:
        """Store ``data``; returns its key."""
        key = key_for(digest(data), ext)
        self.put_key(key, data)
        return key

    @abstractmethod
    def put_key(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (which must name its SHA-256)."""

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def keys(self) -> Iterator[str]:
        """Every complete object's key (for ``store check``)."""

    @abstractmethod
    def modified_at(self, key: str) -> datetime | None:
        """When the object was last written (UTC, aware); None when it does not exist."""

    def pending(self) -> int:
        """Objects written but not yet in their final store (the spool's backlog)."""
        return 0

    def describe(self) -> str:
        """Where the objects live, for pages and logs (never credentials)."""
        return type(self).__name__
