"""Position correction: find where the part lies in the region of interest and cut the ROI again where it
lies, before any model sees it (a smart camera's "position adjustment" / "fixture": the inspection window
follows the part).

The reference is the mean grayscale image of a tool's training goods, kept small (``SIZE`` px on its longer
side). A judged crop is registered to it with OpenCV's ECC (Evangelidis & Psarakis, 2008; a Euclidean
motion: shift and turn, invariant to brightness and contrast), and the ROI is cut again from the *whole*
image along that motion, so what came into the window when the part moved is replaced by the part itself
where the image holds it (black where it does not). A motion the registration cannot find, or one larger
than a part plausibly moves (``MAX_SHIFT``, ``MAX_TURN``), leaves the crop as it was: correction never makes
a verdict depend on a failed search. bench/robustness.py measured what it buys (bench/RESULTS.md).

numpy and OpenCV only (no torch): the reference is a small ``.npy`` file in the model version's folder,
read without pickle.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from models.artifact_meta import ArtifactError

SIZE = 128  # px on the longer side of the reference and of the crop registered to it
MAX_SHIFT = 0.15  # fraction of the ROI's side: a larger found shift is a failed search
MAX_TURN = 10.0  # degrees
REFINE = 2  # searches after the first, each on the region cut where the previous one found the part
REFERENCE_FILE = "part_reference.npy"
_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
_SMOOTHING = 5  # ECC's Gaussian pre-filter (px at SIZE)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


def _small(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The image in grayscale at ``shape`` (rows, columns), float32."""
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    return cv2.resize(gray, shape[::-1], interpolation=cv2.INTER_AREA).astype(np.float32)


def small_shape(height: int, width: int) -> tuple[int, int]:
    """The reference's shape for an ROI of ``height`` x ``width`` px (its aspect kept)."""
    scale = SIZE / max(height, width)
    return max(8, round(height * scale)), max(8, round(width * scale))


def cut_at(image: np.ndarray, box: Box, placed: np.ndarray | None) -> np.ndarray:
    """The ROI ``box`` of ``image`` cut where ``placed`` (``PartLocator.place``) says the part lies: pixel ``p``
    of the cut is ``image`` at ``placed @ p``, black outside ``image``; the plain crop when ``placed`` is None."""
    x0, y0, x1, y1 = box
    if placed is None:
        return np.ascontiguousarray(image[y0:y1, x0:x1])
    return cv2.warpAffine(image, placed, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def map_onto_region(score_map: np.ndarray, box: Box, placed: np.ndarray | None) -> np.ndarray:
    """A map of the cut (``cut_at``; any resolution) laid where the part lies in the region as drawn: ``(h, w)``
    of ``box``, 0 where the cut does not reach (what an overlay on the camera frame draws)."""
    width, height = box[2] - box[0], box[3] - box[1]
    resized = score_map if score_map.shape == (height, width) else cv2.resize(
        score_map.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    if placed is None:
        return resized
    onto = placed.copy()
    onto[:, 2] -= (box[0], box[1])  # image coordinates -> the region's
    return cv2.warpAffine(resized.astype(np.float32), onto, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _scaling(factor: float) -> np.ndarray:
    """3 x 3 map from small-image pixel coordinates to full-size ones (pixel centres kept)."""
    return np.array([[factor, 0.0, (factor - 1) / 2], [0.0, factor, (factor - 1) / 2], [0.0, 0.0, 1.0]])


class PartLocator:
    """Where the part lies in a crop, against the mean of the goods (see the module doc).

    ``reference``: ``(h, w)`` float32, the goods' mean grayscale image at ``small_shape`` of their ROI.
    """

    def __init__(self, reference: np.ndarray) -> None:
        if reference.ndim != 2 or min(reference.shape) < 8 or not np.isfinite(reference).all():
            raise ArtifactError(f"a part reference must be a finite 2-D image, got shape {reference.shape}")
        self.reference = reference.astype(np.float32)

    @classmethod
    def from_goods(cls, images: list[np.ndarray]) -> PartLocator:
        """The reference of RGB uint8 good images ``(H, W, 3)`` (resized to the first one's aspect)."""
        if not images:
            raise ValueError("position correction needs at least one good image")
        shape = small_shape(*images[0].shape[:2])
        return cls(np.mean([_small(image, shape) for image in images], axis=0))

    def locate(self, crop: np.ndarray) -> np.ndarray | None:
        """The motion of the part in ``crop`` (RGB or gray): a 2 x 3 matrix taking reference coordinates (in
        ``crop``'s pixels) to where they lie in ``crop``; None when none is found or it is implausible."""
        height, width = crop.shape[:2]
        small = _small(crop, self.reference.shape)
        if float(small.std()) < 1e-3:
            return None  # a flat image: nothing to register
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            _, warp = cv2.findTransformECC(self.reference, small, warp, cv2.MOTION_EUCLIDEAN, _CRITERIA, None,
                                           _SMOOTHING)
        except cv2.error:
            return None  # did not converge
        factor = max(height, width) / max(self.reference.shape)
        scaling = _scaling(factor)
        full = (scaling @ np.vstack([warp.astype(np.float64), [0.0, 0.0, 1.0]]) @ np.linalg.inv(scaling))[:2]
        centre = np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
        shift = full @ centre - centre[:2]
        turn = math.degrees(math.atan2(full[1, 0], full[0, 0]))
        if abs(shift[0]) > MAX_SHIFT * width or abs(shift[1]) > MAX_SHIFT * height or abs(turn) > MAX_TURN:
            return None
        return full

    def place(self, image: np.ndarray, box: Box) -> np.ndarray | None:
        """Where the part of ROI ``box`` lies in ``image``: a 2 x 3 matrix taking the ROI's coordinates to
        ``image``'s (None: not found). The search runs again on the cut it found (``REFINE`` times): what
        came into the window when the part moved pulls the first search short, the next sees the part."""
        x0, y0, x1, y1 = box
        motion = self.locate(np.ascontiguousarray(image[y0:y1, x0:x1]))
        if motion is None:
            return None
        placed = np.vstack([motion, [0.0, 0.0, 1.0]])
        placed[:2, 2] += (x0, y0)  # crop coordinates -> image coordinates
        for _ in range(REFINE):
            more = self.locate(cut_at(image, box, placed[:2]))
            if more is None:
                break
            placed = placed @ np.vstack([more, [0.0, 0.0, 1.0]])
        return placed[:2]

    def cut(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The ROI ``box`` of ``image`` cut again where the part lies (``place``; the plain crop when it is
        not found); what falls outside ``image`` is black."""
        return cut_at(image, box, self.place(image, box))

    def save(self, folder: Path) -> None:
        """Write the reference into a model version's ``folder``."""
        np.save(Path(folder) / REFERENCE_FILE, self.reference, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> PartLocator | None:
        """The reference saved in ``folder`` (None: the version was trained without position correction);
        ArtifactError when the file is not a plain float image."""
        file = Path(folder) / REFERENCE_FILE
        if not file.is_file():
            return None
        try:
            reference = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ArtifactError(f"{file} is not a usable part reference: {error}") from None
        if reference.dtype.kind != "f":
            raise ArtifactError(f"{file} is not a usable part reference: dtype {reference.dtype}")
        return cls(reference)
