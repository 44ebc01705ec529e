"""Synthetic defects drawn on good images, so that an anomaly model can learn which feature
directions matter without a single real defect.

Generic surface defects, not tied to one product: a crack or scratch (a thin random polyline), a
blotch (an irregular filled polygon, like a stain, a missing coating or an inactive area) and a
spot; each darker or brighter than the part, with a soft edge and a random strength. The same idea
as the synthetic anomalies of DRAEM (Zavrtanik et al. 2021) and CutPaste (Li et al. 2021), used here
only to shape the metric of a nearest-neighbour model (``models.projection``), never as labels of
real parts.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Shape = Callable[[tuple[int, int], np.random.Generator], np.ndarray]


def crack_mask(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A thin random polyline of 2-4 bends, 1-3 px wide: ``(H, W)`` uint8 mask (255 inside)."""
    height, width = size
    mask = np.zeros(size, np.uint8)
    point = rng.uniform([0, 0], [width, height])
    points = [point]
    angle = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(2, 5))):
        angle += rng.normal(0, 0.6)
        point = point + rng.uniform(0.08, 0.3) * width * np.array([np.cos(angle), np.sin(angle)])
        points.append(point)
    cv2.polylines(mask, [np.array(points, np.int32)], False, 255, int(rng.integers(1, 4)))
    return mask


def blotch_mask(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An irregular filled polygon of 5-8 corners, 4-20 % of the width across: ``(H, W)`` uint8 mask."""
    height, width = size
    mask = np.zeros(size, np.uint8)
    centre = rng.uniform([0.1 * width, 0.1 * height], [0.9 * width, 0.9 * height])
    corners = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = rng.uniform(0.04, 0.2) * width * rng.uniform(0.5, 1.3, corners)
    points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    cv2.fillPoly(mask, [points.astype(np.int32)], 255)
    return mask


def spot_mask(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A small disc, 3-9 px in radius: ``(H, W)`` uint8 mask."""
    height, width = size
    mask = np.zeros(size, np.uint8)
    centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
    cv2.circle(mask, centre, int(rng.integers(3, 10)), 255, -1)
    return mask


SHAPES: tuple[Shape, ...] = (crack_mask, blotch_mask, spot_mask)


def synthetic_defect(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W) or (H, W, C) uint8 with one random defect drawn on it, and the defect's mask
    ``(H, W)`` bool. Dark defects scale the pixels by 0.1-0.6, bright ones add 40-120 grey levels; the
    edge is blurred (sigma 1.5 px) so that the defect is not a perfectly sharp cut-out."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    mask = shape(image.shape[:2], rng)
    blend = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.5)
    if image.ndim == 3:
        blend = blend[:, :, None]
    pixels = image.astype(np.float32)
    if rng.random() < 0.5:
        target = pixels * rng.uniform(0.1, 0.6)
    else:
        target = np.minimum(255.0, pixels + rng.uniform(40, 120))
    out = pixels * (1 - blend) + target * blend
    return np.clip(out, 0, 255).astype(np.uint8), mask > 0


def covered_cells(mask: np.ndarray, grid: tuple[int, int], coverage: float = 0.02) -> np.ndarray:
    """The cells of a ``grid`` = (h, w) patch grid laid over ``mask`` (H, W) bool where the defect
    covers more than ``coverage`` of the cell: ``(h, w)`` bool."""
    height, width = grid
    share = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return share > coverage
