"""Synthetic defects: drawn where their mask says, nowhere else, reproducible from the seed, and each
shape and both polarities occur."""

from __future__ import annotations

import numpy as np
import pytest

from models.anomaly.synthetic import SHAPES, synthetic_defect


def _part(seed: int = 0) -> np.ndarray:
    """A textured grey part (H, W, 3) with room to go darker and brighter."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(90, 140, (120, 160), dtype=np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def test_the_image_changes_only_at_and_next_to_the_mask() -> None:
    image = _part()
    rng = np.random.default_rng(1)
    for _ in range(30):
        defective, mask = synthetic_defect(image, rng)
        assert defective.shape == image.shape and defective.dtype == np.uint8
        assert mask.shape == image.shape[:2] and mask.dtype == bool and mask.any()
        changed = np.abs(defective.astype(int) - image.astype(int)).max(axis=2) > 2
        assert changed[mask].mean() > 0.9  # the defect is really drawn inside its mask
        ys, xs = np.nonzero(changed)
        ring = np.zeros_like(mask)
        my, mx = np.nonzero(mask)
        for y, x in zip(ys, xs, strict=True):  # soft edge: at most 5 px (3.3 sigma) outside the mask
            ring[y, x] = np.min(np.abs(my - y) + np.abs(mx - x)) <= 7
        assert ring[changed].all()


def test_defects_are_dark_or_bright_and_reproducible() -> None:
    image = _part()
    first = [synthetic_defect(image, np.random.default_rng(7)) for _ in range(2)]
    assert np.array_equal(first[0][0], first[1][0]) and np.array_equal(first[0][1], first[1][1])
    rng = np.random.default_rng(3)
    signs = set()
    for _ in range(40):
        defective, mask = synthetic_defect(image, rng)
        signs.add(np.sign(float(defective[mask].astype(int).mean() - image[mask].astype(int).mean())))
    assert signs == {-1.0, 1.0}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_stays_inside_the_image_and_has_a_plausible_size(shape) -> None:
    rng = np.random.default_rng(11)
    areas = [int((shape((120, 160), rng) > 0).sum()) for _ in range(20)]
    assert all(a > 0 for a in areas)
    assert max(areas) < 0.25 * 120 * 160  # a defect, not a different part


def test_a_grey_image_keeps_its_single_channel() -> None:
    grey = _part()[:, :, 0]
    defective, mask = synthetic_defect(grey, np.random.default_rng(0))
    assert defective.shape == grey.shape and mask.shape == grey.shape
