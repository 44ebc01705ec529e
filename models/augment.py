"""Changes of light, position and motion on RGB uint8 images ``(H, W, 3)``: the classifier's
training-time augmentation, the test-time views (TTA) and the perturbations bench/robustness.py
measures with. The same operations everywhere, so what is trained on is what is tested against.

Light, position and sensor noise are ``torchvision.transforms.v2.functional`` ops on uint8 tensors.
Motion blur is hand-written (a line kernel through ``cv2.filter2D``): torchvision has no motion blur,
only a Gaussian one, and a moving part smears along one direction. The test-time variants' names
(``TTA_NAMES``, ``check_tta``) are in the torch-free ``models.augment_names``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from models.augment_names import LIGHT_VIEWS, SHIFT_VIEWS

# Training-time augmentation ranges: the changes a line sees (issue 22) -- light +-25 %, gamma
# 0.8-1.25, contrast +-20 %, shifts up to 5 % of the ROI, rotations up to 3 degrees, motion blur up
# to 7 px, sensor noise up to 4 grey levels.
BRIGHTNESS = 0.25
CONTRAST = 0.2
GAMMA = 1.25
SHIFT = 0.05
ROTATION = 3.0
MOTION_PX = 7
NOISE = 4.0


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.permute(1, 2, 0).numpy())


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Intensities times ``factor`` (clipped)."""
    return _array(TF.adjust_brightness(_tensor(image), factor))


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Contrast about the mean grey level times ``factor``."""
    return _array(TF.adjust_contrast(_tensor(image), factor))


def gamma(image: np.ndarray, value: float) -> np.ndarray:
    """Gamma curve ``(I / 255) ** value``."""
    return _array(TF.adjust_gamma(_tensor(image), value))


def move(image: np.ndarray, dx: float = 0.0, dy: float = 0.0, degrees: float = 0.0) -> np.ndarray:
    """The part shifted by ``dx`` / ``dy`` (fractions of the width / height) and turned by ``degrees``
    about the centre; what comes into view is black (the background of an unlit fixture)."""
    height, width = image.shape[:2]
    return _array(TF.affine(_tensor(image), angle=degrees, translate=[round(dx * width), round(dy * height)],
                            scale=1.0, shear=[0.0, 0.0], interpolation=TF.InterpolationMode.BILINEAR, fill=0))


def motion_blur(image: np.ndarray, px: int, degrees: float = 0.0) -> np.ndarray:
    """The image smeared over ``px`` pixels along the direction ``degrees`` (0: horizontal, a conveyor)."""
    if px <= 1:
        return image
    kernel = np.zeros((px, px), np.float32)
    centre = (px - 1) / 2
    dx, dy = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    cv2.line(kernel, (round(centre - dx * centre), round(centre - dy * centre)),
             (round(centre + dx * centre), round(centre + dy * centre)), 1.0, 1)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Gaussian sensor noise of ``sigma`` grey levels (seeded)."""
    torch.manual_seed(seed)  # gaussian_noise draws from torch's generator
    noisy = TF.gaussian_noise(_tensor(image).float() / 255.0, mean=0.0, sigma=sigma / 255.0, clip=True)
    return (noisy * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy().copy()


def augmented(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random variant of ``image`` within the ranges above: light (brightness, contrast, gamma),
    position (shift, rotation), and with even odds motion blur and sensor noise."""
    out = brightness(image, rng.uniform(1 - BRIGHTNESS, 1 + BRIGHTNESS))
    out = contrast(out, rng.uniform(1 - CONTRAST, 1 + CONTRAST))
    out = gamma(out, float(np.exp(rng.uniform(-math.log(GAMMA), math.log(GAMMA)))))
    angle = rng.uniform(0, 2 * math.pi)
    distance = rng.uniform(0, SHIFT)
    out = move(out, distance * math.cos(angle), distance * math.sin(angle), rng.uniform(-ROTATION, ROTATION))
    if rng.random() < 0.5:
        out = motion_blur(out, int(rng.integers(3, MOTION_PX + 1)), rng.uniform(0, 180))
    if rng.random() < 0.5:
        out = noise(out, rng.uniform(1.0, NOISE), int(rng.integers(2**31)))
    return out


def augmented_copies(images: list[np.ndarray], copies: int, seed: int) -> list[np.ndarray]:
    """``copies`` random variants of each image (image after image; seeded)."""
    rng = np.random.default_rng(seed)
    return [augmented(image, rng) for image in images for _ in range(copies)]


# The fixed variants of each training image both models also learn from with ``augment="line"`` (the
# anomaly model's memory holds them for each good; the classifier learns from them for every image): the
# edges of the ranges above, the same for every image -- brighter light (darker is undone by the intensity
# standardisation, brighter clips); the part shifted by the full 5 % towards each corner and along each
# axis, turned by 3 degrees; motion blur over 7 px in four directions. Twelve variants: bench/robustness.py
# measured them against seven (one shift per corner, blur along the axes only) and, for the classifier,
# against 3 random copies (``augmented``), which left it failing under motion blur.
def _moved(dx: float, dy: float, degrees: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda image: move(image, dx, dy, degrees)


def _blurred(degrees: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda image: motion_blur(image, MOTION_PX, degrees)


LINE_VARIANTS: tuple[Callable[[np.ndarray], np.ndarray], ...] = (
    lambda image: brightness(image, 1 + BRIGHTNESS),
    *(_moved(sx * SHIFT, sy * SHIFT, sx * sy * ROTATION) for sx in (1, -1) for sy in (1, -1)),
    *(_moved(sx * SHIFT, 0.0, ROTATION) for sx in (1, -1)),
    *(_moved(0.0, sy * SHIFT, -ROTATION) for sy in (1, -1)),
    *(_blurred(degrees) for degrees in (0.0, 45.0, 90.0, 135.0)),
)


# --- test-time views ------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """One test-time view: how the image is changed, and how a map of the changed image is brought
    back onto the original (None: it already lies on it)."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    back: Callable[[np.ndarray], np.ndarray] | None = None


TTA_SHIFT = 0.03  # the shifted views move the part by 3 % of the ROI (half a patch of the grid)


def _shift_map(fraction: float) -> Callable[[np.ndarray], np.ndarray]:
    def back(score_map: np.ndarray) -> np.ndarray:
        height, width = score_map.shape[:2]
        matrix = np.float32([[1, 0, -fraction * width], [0, 1, -fraction * height]])
        return cv2.warpAffine(score_map, matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    return back


# The variants a tool may choose beyond the mirror (which every model does itself, in one batch):
# ``shift``: two views moved diagonally by +-3 % of the ROI; ``light``: two views at gamma 0.85 and
# 1.18 (brighter and darker mid-tones; plain brightness is undone by the models' own intensity
# standardisation).
TTA_VARIANTS: dict[str, tuple[View, ...]] = {
    SHIFT_VIEWS: (View("shift+", lambda im: move(im, TTA_SHIFT, TTA_SHIFT), _shift_map(TTA_SHIFT)),
                  View("shift-", lambda im: move(im, -TTA_SHIFT, -TTA_SHIFT), _shift_map(-TTA_SHIFT))),
    LIGHT_VIEWS: (View("gamma-", lambda im: gamma(im, 0.85)), View("gamma+", lambda im: gamma(im, 1.18))),
}
