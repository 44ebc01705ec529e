"""Checks of a tool's training set the Train page shows before training: too few, imbalance,
near-duplicates."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.images import ImageRejectedError, decode_image
from core.studio import Studio
from core.tools import require_tool
from models.classifier.estimator import MIN_IMAGES_PER_CLASS
from storage import repository as repo

IMBALANCE_RATIO = 3.0
THUMBNAIL = 32
# mean absolute difference of normalised 32 x 32 thumbnails below which two images count as
# near-duplicates (a re-shot of the same part; measured: 2 px shift 3.7, distinct ELPV cells >= 7.6)
NEAR_DUPLICATE_DIFFERENCE = 5.0


@dataclass(frozen=True)
class NearDuplicate:
    first: int  # sample ids
    second: int
    label_first: str
    label_second: str


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A small gray thumbnail ``(32, 32)`` float32, normalised to the image's mean and contrast."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA).astype(np.float32)
    return (small - small.mean()) / (small.std() + 1e-6) * 64.0


def near_duplicate_pairs(thumbnails: np.ndarray, limit: float = NEAR_DUPLICATE_DIFFERENCE) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, i < j, of ``(N, 32, 32)`` thumbnails closer than ``limit``."""
    flat = thumbnails.reshape(len(thumbnails), -1)
    pairs = []
    for i in range(len(flat) - 1):
        difference = np.abs(flat[i + 1 :] - flat[i]).mean(axis=1)
        pairs.extend((i, i + 1 + int(j)) for j in np.flatnonzero(difference < limit))
    return pairs


def find_near_duplicates(studio: Studio, tool_name: str) -> list[NearDuplicate]:
    """Pairs of the tool's samples that are near-duplicates (unreadable samples are left out)."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        rows = [(s.id, s.image_key, s.label) for s in repo.list_samples(session, tool.id)]
    kept, thumbs = [], []
    for sample_id, key, label in rows:
        try:
            thumbs.append(thumbnail(decode_image(studio.images.read(key)).rgb))
        except (ImageRejectedError, OSError):
            continue
        kept.append((sample_id, label))
    if len(thumbs) < 2:
        return []
    return [NearDuplicate(kept[i][0], kept[j][0], kept[i][1], kept[j][1])
            for i, j in near_duplicate_pairs(np.stack(thumbs))]


def count_warnings(counts: dict[str, int]) -> list[str]:
    """Warnings about class counts: too few images (how many more), imbalance."""
    messages = [f"'{name}' has {count} image(s): add {MIN_IMAGES_PER_CLASS - count} more to train."
                for name, count in counts.items() if count < MIN_IMAGES_PER_CLASS]
    present = {name: count for name, count in counts.items() if count}
    if len(present) >= 2:
        largest, smallest = max(present, key=present.__getitem__), min(present, key=present.__getitem__)
        if present[largest] > IMBALANCE_RATIO * present[smallest]:
            messages.append(
                f"The classes are imbalanced: '{largest}' has {present[largest]} images, '{smallest}' "
                f"only {present[smallest]}. Training balances them, but more '{smallest}' images help most.")
    return messages


def duplicate_warning(pairs: list[NearDuplicate]) -> str | None:
    """One warning for near-duplicate pairs, or None."""
    if not pairs:
        return None
    shown = ", ".join(f"{p.first} & {p.second}" for p in pairs[:5])
    more = f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
    mixed = sum(p.label_first != p.label_second for p in pairs)
    conflict = f" {mixed} pair(s) carry different labels: check them." if mixed else ""
    return (f"{len(pairs)} near-duplicate pair(s) of samples (ids {shown}{more}): they add little and "
            f"make cross-validation look better than it is.{conflict}")
