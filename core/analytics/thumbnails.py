"""Small previews of inspection images for tables."""

from __future__ import annotations

import base64
import io
from functools import lru_cache

from PIL import Image, UnidentifiedImageError

from core.studio import Studio
from storage.image_store import ImageStore

THUMBNAIL_PX = 64


@lru_cache(maxsize=512)
def _thumbnail(store: ImageStore, key: str) -> str | None:
    try:
        with Image.open(io.BytesIO(store.read(key))) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=80)
    except (OSError, UnidentifiedImageError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def thumbnail_uri(studio: Studio, image_key: object) -> str | None:
    """A small JPEG data URI of a stored image, or None when the image was not kept or is unreadable.

    Image keys are content hashes, so a cached preview never goes stale. Anything but a key (None, NaN
    from a data frame) gives None."""
    if not isinstance(image_key, str) or not image_key or not studio.images.exists(image_key):
        return None
    return _thumbnail(studio.images, image_key)
