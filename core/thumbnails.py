"""Small derived images of a sample: downscaled copies, grid thumbnails and perceptual hashes.

Thumbnails are JPEG files made once (on import, or on first view for older samples) and kept in a
content-addressed store under ``<data dir>/thumbnails``, next to the image store.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.studio import Studio, object_store
from storage.image_store import ImageStore

THUMB_SIDE = 160
THUMB_QUALITY = 80
NEAR_DUPLICATE_BITS = 4  # dHashes at most this many bits apart are near-duplicates


def thumbnail_store(studio: Studio) -> ImageStore:
    """The store of thumbnail files, inside the studio's data folder."""
    return object_store(studio.settings, "thumbnails")


def fit_within(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` shrunk (area interpolation, aspect kept) so that its longest side is at most ``max_side``."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def thumbnail_jpeg(rgb: np.ndarray) -> bytes:
    """JPEG bytes of an ``(H, W, 3)`` RGB image shrunk to at most THUMB_SIDE pixels a side."""
    small = fit_within(rgb, THUMB_SIDE)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    if not ok:
        raise ValueError("cannot encode a thumbnail")
    return encoded.tobytes()


def dhash(rgb: np.ndarray) -> str:
    """64-bit difference hash of an ``(H, W, 3)`` image as 16 hex digits.

    Gray 9 x 8 pixels; each bit says whether a pixel is brighter than its right neighbour
    (Krawetz, "Kind of like that", 2013). Small edits, rescaling and recompression move few bits.
    """
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def hash_array(hashes: list[str]) -> np.ndarray:
    """dHash hex strings as a ``(N,)`` uint64 array."""
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def bit_distances(one: int | np.uint64, many: np.ndarray) -> np.ndarray:
    """Hamming distances ``(N,)`` between one 64-bit hash and ``many`` ``(N,)`` uint64 hashes."""
    return np.bitwise_count(np.bitwise_xor(many, np.uint64(one)))


def near_duplicate_pairs(ids: list[int], hashes: list[str],
                         max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[int, int, int]]:
    """Pairs ``(id_a, id_b, bits)`` (id_a < id_b) whose hashes differ in at most ``max_bits`` bits."""
    values = hash_array(hashes)
    pairs: list[tuple[int, int, int]] = []
    for index in range(len(values) - 1):
        distances = bit_distances(values[index], values[index + 1:])
        for offset in np.flatnonzero(distances <= max_bits):
            other = index + 1 + int(offset)
            low, high = sorted((ids[index], ids[other]))
            pairs.append((low, high, int(distances[offset])))
    return sorted(pairs)
