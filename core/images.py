"""Decoding user images safely: format check, size limits, EXIF orientation, 8-bit RGB."""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "TIFF": "tif"}
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 40_000_000  # about 6300 x 6300; larger images are refused before decoding


class ImageRejectedError(ValueError):
    """An image that cannot be used; the message says why."""


class UnsupportedImageError(ImageRejectedError):
    """Bytes that are not an image in a supported format (as opposed to a damaged or too large one)."""


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    ext: str

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """8-bit RGB pixels of any PIL mode (16-bit and float images are rescaled to their range)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        finite = np.isfinite(array)
        if not finite.any():
            raise ImageRejectedError("the image has no finite pixel values (all NaN or infinite)")
        low, high = float(array[finite].min()), float(array[finite].max())
        # NaN pixels become black, +/-infinity the brightest / darkest finite value
        array = np.nan_to_num(array, nan=low, posinf=high, neginf=low)
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        gray = np.clip(scaled, 0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes) -> DecodedImage:
    """Decode PNG, JPEG, BMP or TIFF bytes to RGB; raises ImageRejectedError with the reason."""
    if not data:
        raise ImageRejectedError("empty file")
    if len(data) > MAX_FILE_BYTES:
        raise ImageRejectedError(f"file larger than {MAX_FILE_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise UnsupportedImageError(
                    f"unsupported format {image.format or 'unknown'} (use PNG, JPEG, BMP or TIFF)")
            if image.width * image.height > MAX_PIXELS:
                raise ImageRejectedError(
                    f"image too large ({image.width} x {image.height} pixels; at most {MAX_PIXELS:,} pixels)"
                )
            ext = FORMATS[image.format]
            image.load()
            image = ImageOps.exif_transpose(image)
    except ImageRejectedError:
        raise
    except UnidentifiedImageError:
        raise UnsupportedImageError("not an image (or a format that is not supported)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(found.group(1)):,} pixels; " if found else ""
        raise ImageRejectedError(f"image too large ({size}at most {MAX_PIXELS:,} pixels)") from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, struct.error, EOFError,
            ZeroDivisionError, OverflowError, AttributeError) as error:  # a damaged file, as Pillow's decoders see it
        raise ImageRejectedError(f"damaged or truncated image ({type(error).__name__}: {error})") from None
    except MemoryError:
        raise ImageRejectedError("the image needs more memory to decode than this computer has") from None
    try:
        return DecodedImage(_to_rgb8(image), ext)
    except ImageRejectedError:
        raise
    except (OSError, ValueError, TypeError) as error:
        raise ImageRejectedError(f"damaged or unusual image ({type(error).__name__}: {error})") from None


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_map(score_map: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of a defect map with values in [0, 1] (what a review card overlays)."""
    levels = np.rint(np.nan_to_num(np.asarray(score_map, dtype=np.float32)).clip(0.0, 1.0) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(levels, mode="L").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_map(data: bytes) -> np.ndarray:
    """A defect map stored by :func:`encode_map`, as float32 in [0, 1] (ImageRejectedError when damaged)."""
    levels = decode_image(data).rgb[..., 0]
    return levels.astype(np.float32) / 255.0
