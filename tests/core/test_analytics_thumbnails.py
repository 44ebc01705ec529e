"""Thumbnails of inspection images for the analytics table, and the heatmap lookup."""

from __future__ import annotations

import base64
import io
import math

from PIL import Image

from core.analytics.thumbnails import HEATMAP_KEY, THUMBNAIL_PX, heatmap_path, thumbnail_uri
from core.studio import Studio
from tests.conftest import ELPV_SUBSET


def test_thumbnail_of_a_stored_image(studio: Studio) -> None:
    cell = sorted((ELPV_SUBSET / "good").glob("*.png"))[0]
    key, _ = studio.images.put(cell.read_bytes(), "png")
    uri = thumbnail_uri(studio, key)
    assert uri is not None and uri.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert max(image.size) == THUMBNAIL_PX  # 300 x 300 cells shrink to 64 x 64
        assert image.format == "JPEG"


def test_no_thumbnail_without_a_readable_image(studio: Studio) -> None:
    assert thumbnail_uri(studio, None) is None
    assert thumbnail_uri(studio, math.nan) is None  # a missing key in a data frame
    assert thumbnail_uri(studio, "ab/cd/" + "0" * 64 + ".png") is None  # never stored
    key, _ = studio.images.put(b"not an image at all", "png")
    assert thumbnail_uri(studio, key) is None


def test_heatmap_only_when_a_model_stored_one(studio: Studio) -> None:
    key, _ = studio.images.put(sorted((ELPV_SUBSET / "defective").glob("*.png"))[0].read_bytes(), "png")
    assert heatmap_path(studio, {HEATMAP_KEY: key}) == studio.images.path(key)
    assert heatmap_path(studio, {}) is None
    assert heatmap_path(studio, None) is None
    assert heatmap_path(studio, {HEATMAP_KEY: "ab/cd/" + "1" * 64 + ".png"}) is None
