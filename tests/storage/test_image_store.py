"""The content-addressed image store: layout, de-duplication, atomic writes, key safety."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storage.image_store import ImageStore


def png_bytes(seed: int, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def test_put_then_read_returns_the_same_bytes(store: ImageStore) -> None:
    data = png_bytes(1)
    key, sha256 = store.put(data, "png")
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert store.read(key) == data
    assert store.exists(key)
    # the bytes decode as the image that was stored
    assert Image.open(io.BytesIO(store.read(key))).size == (16, 16)


def test_layout_is_two_levels_of_the_hash(store: ImageStore, tmp_path: Path) -> None:
    data = png_bytes(2)
    key, sha256 = store.put(data, ".PNG")
    assert key == f"{sha256[:2]}/{sha256[2:4]}/{sha256}.png"
    assert files_under(tmp_path / "images") == [tmp_path / "images" / sha256[:2] / sha256[2:4] / f"{sha256}.png"]
    assert store.path(key) == (tmp_path / "images" / sha256[:2] / sha256[2:4] / f"{sha256}.png").resolve()


def test_same_content_is_stored_once(store: ImageStore, tmp_path: Path) -> None:
    data = png_bytes(3)
    first = store.put(data, "png")
    path = store.path(first[0])
    written = path.stat()
    os.utime(path, ns=(written.st_atime_ns - 10**9, written.st_mtime_ns - 10**9))
    second = store.put(bytes(data), "png")
    assert second == first
    assert files_under(tmp_path / "images") == [path]
    assert path.stat().st_ino == written.st_ino  # not rewritten (a rewrite renames a new file into place)
    assert path.stat().st_mtime_ns >= written.st_mtime_ns  # but in use again: a garbage collection's grace restarts

    other = store.put(png_bytes(4), "png")
    assert other[0] != first[0]
    assert len(files_under(tmp_path / "images")) == 2


def test_failed_write_leaves_neither_final_nor_temporary_file(
    store: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png_bytes(5)
    key = store.key_for(store.digest(data), "png")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        store.put(data, "png")
    monkeypatch.undo()

    assert not store.exists(key)
    assert files_under(tmp_path / "images") == []  # no .tmp-*.part left behind either

    # once the disk is fine again the same content is stored normally
    assert store.put(data, "png")[0] == key
    assert store.read(key) == data
    assert len(files_under(tmp_path / "images")) == 1


@pytest.mark.parametrize("key", [
    "../outside.png",
    "ab/../../outside.png",
    "ab/cd/../../../../etc/passwd",
    "/etc/passwd",
    "..",
    "",
])
def test_keys_leaving_the_store_are_refused(store: ImageStore, tmp_path: Path, key: str) -> None:
    (tmp_path / "outside.png").write_bytes(b"secret")
    with pytest.raises(ValueError, match="outside the store"):
        store.path(key)
    with pytest.raises(ValueError):
        store.read(key)
    with pytest.raises(ValueError):
        store.exists(key)
    with pytest.raises(ValueError):
        store.delete(key)
    assert (tmp_path / "outside.png").read_bytes() == b"secret"


def test_delete_removes_the_file(store: ImageStore) -> None:
    key, _ = store.put(png_bytes(6), "png")
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting again is harmless
