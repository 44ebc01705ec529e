"""core.camera (the frame holder shared with the video thread) and core.thumbnails."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from core.camera import LatestFrame, draw_roi
from core.images import decode_image
from core.thumbnails import THUMB_SIDE, bit_distances, dhash, fit_within, near_duplicate_pairs, thumbnail_jpeg


def test_latest_frame_under_a_concurrent_writer() -> None:
    holder = LatestFrame()
    assert holder.latest() is None
    assert holder.wait_newer(0, timeout_s=0.05) is None
    done = threading.Event()

    def camera() -> None:
        for value in range(500):
            holder.put(np.full((4, 4, 3), value % 256, np.uint8))
        done.set()

    thread = threading.Thread(target=camera)
    thread.start()
    seen = []
    while not done.is_set():
        frame = holder.latest()
        if frame is not None:
            seen.append(frame.number)
            assert frame.rgb[0, 0, 0] == (frame.number - 1) % 256  # pixels and number belong together
    thread.join()
    assert seen == sorted(seen)
    assert holder.latest().number == 500
    assert holder.latest(max_age_s=0.0) is None  # too old for a 0 s limit

    waiter: list[object] = []
    reader = threading.Thread(target=lambda: waiter.append(holder.wait_newer(500, timeout_s=5)))
    reader.start()
    holder.put(np.zeros((4, 4, 3), np.uint8))
    reader.join()
    assert waiter[0].number == 501


def test_draw_roi_outlines_a_copy() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    outlined = draw_roi(frame, [0.25, 0.1, 0.75, 0.9])
    assert frame.max() == 0  # the original is untouched
    assert outlined[10, 100].tolist() == [0, 200, 255]  # top edge at y = 0.1 * 100
    assert outlined[50, 100].max() == 0  # inside stays clear
    assert draw_roi(frame, None) is frame


def test_thumbnails_keep_the_aspect_ratio(elpv_subset: Path) -> None:
    wide = np.zeros((300, 900, 3), np.uint8)
    assert fit_within(wide, 90).shape == (30, 90, 3)
    assert fit_within(wide, 1000) is wide
    thumb = decode_image(thumbnail_jpeg(wide)).rgb
    assert thumb.shape == (THUMB_SIDE // 3, THUMB_SIDE, 3)


def test_dhash_tells_near_copies_from_other_cells(elpv_subset: Path) -> None:
    paths = sorted((elpv_subset / "good").glob("*.png"))[:8]
    images = [decode_image(p.read_bytes()).rgb for p in paths]
    buffer = io.BytesIO()
    Image.fromarray(images[0]).resize((150, 150)).save(buffer, format="JPEG", quality=70)
    copy = decode_image(buffer.getvalue()).rgb  # half size, recompressed
    hashes = [dhash(rgb) for rgb in images]
    assert bit_distances(int(dhash(copy), 16), np.array([int(hashes[0], 16)], np.uint64))[0] <= 4
    pairs = near_duplicate_pairs(list(range(9)), hashes + [dhash(copy)])
    assert (0, 8) in [(a, b) for a, b, _ in pairs]
    assert all(bits <= 4 for _, _, bits in pairs)
