"""Thumbnails of inspection images for the analytics table."""

from __future__ import annotations

import base64
import io
import math

from PIL import Image

from core.analytics.thumbnails import THUMBNAIL_PX, thumbnail_uri
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
