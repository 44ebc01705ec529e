"""Intensity standardisation before the network."""

from __future__ import annotations

import numpy as np
import pytest

from models.preprocess import standardise_intensity


@pytest.mark.parametrize("shape", [(300, 300, 3), (123, 77, 3), (64, 48)])
def test_standardise_intensity_is_the_per_pixel_formula(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    image = np.clip(rng.normal(70, 20, shape), 0, 255).astype(np.uint8)  # a dim, flat photo
    pixels = image.astype(np.float64)
    expected = np.clip((pixels - pixels.mean()) / (pixels.std() + 1e-6) * 50 + 128, 0, 255).astype(np.uint8)
    result = standardise_intensity(image)
    assert result.shape == image.shape and result.dtype == np.uint8
    assert np.abs(result.astype(int) - expected).max() <= 1  # float rounding at most
    assert result.mean() == pytest.approx(128, abs=1.5) and result.std() == pytest.approx(50, abs=1.5)
