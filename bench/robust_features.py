"""Backbone features of ELPV cells under the perturbations and test-time views of bench/robustness.py,
cached on disk (one file per perturbation and view) so that the benchmark can be run in parts of a few
minutes each and re-scored without the network.

The cache holds, per cell, the outputs of backbone stages 3 and 4 (float16) of the product's own
preprocessing (``models.classifier.estimator.network_input``: intensity standardisation, 240 px for the
balanced profile). Both the classifier's patch head and the anomaly model read exactly these stages, so
one backbone pass serves both models.

Position correction (``models.registration``) is measured in a camera frame: the cell on a black fixture
(``frame``), the region of interest the cell's place in the unmoved frame, re-cut by a ``PartLocator``
before the backbone (``compute_corrected``, one cache per locator).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from models import augment
from models.backbones.registry import get_backbone
from models.classifier.estimator import network_input
from models.profiles import get_profile
from models.registration import Box, PartLocator

STAGES = (3, 4)
PAD = 0.10  # black fixture around the cell in the camera frame, a fraction of the cell's side on each side
BATCH = 16
CACHE = Path("/tmp/robustness-cache")


def _rng(cell: int, name: str) -> np.random.Generator:
    return np.random.default_rng([cell, zlib.crc32(name.encode())])


def _brightness(image: np.ndarray, cell: int) -> np.ndarray:
    return augment.brightness(image, 1.25 if _rng(cell, "brightness").random() < 0.5 else 0.75)


def _gamma(image: np.ndarray, cell: int) -> np.ndarray:
    return augment.gamma(image, 1.25 if _rng(cell, "gamma").random() < 0.5 else 0.8)


def _motion(cell: int) -> tuple[float, float, float]:
    """The position perturbation of ``cell``: shift (fractions of the cell's side) and turn (degrees)."""
    rng = _rng(cell, "position")
    angle = rng.uniform(0, 2 * math.pi)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return 0.05 * math.cos(angle), 0.05 * math.sin(angle), sign * 3.0


def _position(image: np.ndarray, cell: int) -> np.ndarray:
    return augment.move(image, *_motion(cell))


def _blur(image: np.ndarray, cell: int) -> np.ndarray:
    return augment.motion_blur(image, 7, _rng(cell, "blur").uniform(0, 180))


# Each perturbation at the edge of the range the issue names, its sign or direction drawn per cell:
# brightness x1.25 or x0.75; gamma 1.25 or 0.8; position: a 5 % shift in a random direction and a
# 3 degree turn; motion blur over 7 px in a random direction.
PERTURBATIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "none": lambda image, cell: image,
    "brightness": _brightness,
    "gamma": _gamma,
    "position": _position,
    "blur": _blur,
}
# Test-time views: the product's own (models.augment.TTA_VARIANTS) and the mirror.
VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "id": lambda image: image,
    "mirror": lambda image: np.ascontiguousarray(image[:, ::-1]),
    **{view.name: view.forward for views in augment.TTA_VARIANTS.values() for view in views},
}


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def frame(gray: np.ndarray, cell: int, perturbation: str) -> tuple[np.ndarray, Box]:
    """The camera frame of a perturbed cell and the region of interest in it: the RGB cell on a black
    fixture (``PAD`` of its side on every side). ``position`` moves the part inside the frame (the same
    draws as ``_position``: the shift a fraction of the *cell's* side, the turn about the frame's centre,
    which is the cell's); the other perturbations are applied to the cell before it is framed. The ROI is
    the cell's place in the unmoved frame, so without correction its crop is the perturbed cell."""
    height, width = gray.shape[:2]
    my, mx = round(PAD * height), round(PAD * width)
    pad = ((my, my), (mx, mx), (0, 0))
    if perturbation == "position":
        canvas = np.pad(rgb(gray), pad)
        dx, dy, degrees = _motion(cell)
        canvas = augment.move(canvas, dx * width / canvas.shape[1], dy * height / canvas.shape[0], degrees)
    else:
        canvas = np.pad(PERTURBATIONS[perturbation](rgb(gray), cell), pad)
    return canvas, (mx, my, mx + width, my + height)


def stage_outputs(images: list[np.ndarray], profile: str) -> list[torch.Tensor]:
    """Stages 3 and 4 ``[(B, C, h, w)]`` of RGB uint8 images, float32 on the CPU."""
    spec = get_profile(profile)
    with torch.inference_mode():
        stages = get_backbone(spec.backbone).forward_stages(network_input(images, spec.input_size, True),
                                                            upto=max(STAGES))
    return [stages[i].float().cpu() for i in STAGES]


def path(perturbation: str, view: str, profile: str) -> Path:
    return CACHE / f"{profile}-{perturbation}-{view}.pt"


def load(perturbation: str, view: str, profile: str) -> dict[str, torch.Tensor] | None:
    file = path(perturbation, view, profile)
    return torch.load(file, weights_only=True) if file.is_file() else None


def compute(cells_gray: np.ndarray, cells: np.ndarray, perturbation: str, view: str, profile: str,
            log: Callable[[str], None] = print) -> dict[str, torch.Tensor]:
    """The cached features of (at least) ``cells`` (indices into ``cells_gray``) under one perturbation
    and view, computed now for the cells not cached yet."""
    perturb, look = PERTURBATIONS[perturbation], VIEWS[view]
    return _cached(cells_gray, cells, perturbation, view, lambda gray, cell: look(perturb(rgb(gray), cell)),
                   profile, log)


def compute_corrected(cells_gray: np.ndarray, cells: np.ndarray, perturbation: str, locator: PartLocator,
                      key: str, profile: str, log: Callable[[str], None] = print) -> dict[str, torch.Tensor]:
    """Like ``compute``, for the ROI of each cell's camera frame (``frame``) cut again by ``locator``
    (``PartLocator.cut``, as the product's engine does on every inspection); cached as view
    ``corrected-{key}``. The locator's reference is kept in the file: a cache made with another one is
    computed again."""
    view = f"corrected-{key}"
    reference = torch.from_numpy(locator.reference)
    have = load(perturbation, view, profile)
    if have is not None and not torch.equal(have.get("reference", torch.empty(0)), reference):
        log(f"{perturbation}/{view}: cached with another reference, computing again")
        path(perturbation, view, profile).unlink()

    def image(gray: np.ndarray, cell: int) -> np.ndarray:
        return locator.cut(*frame(gray, cell, perturbation))

    return _cached(cells_gray, cells, perturbation, view, image, profile, log, {"reference": reference})


def _cached(cells_gray: np.ndarray, cells: np.ndarray, perturbation: str, view: str,
            image: Callable[[np.ndarray, int], np.ndarray], profile: str, log: Callable[[str], None],
            extra: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The features of ``image(cells_gray[i], i)`` for ``cells``, from the cache file of ``perturbation``
    and ``view`` and computed now for the cells not in it (``extra``: tensors kept in the file as they are)."""
    extra = extra or {}
    have = load(perturbation, view, profile)
    missing = cells if have is None else np.setdiff1d(cells, have["cells"].numpy())
    if not len(missing):
        return have
    outputs: list[list[torch.Tensor]] = [[] for _ in STAGES]
    for start in range(0, len(missing), BATCH):
        chunk = [image(cells_gray[i], int(i)) for i in missing[start : start + BATCH]]
        for slot, output in zip(outputs, stage_outputs(chunk, profile), strict=True):
            slot.append(output.half())
    parts = [] if have is None else [{key: value for key, value in have.items() if key not in extra}]
    parts.append({"cells": torch.as_tensor(missing), **{f"s{s}": torch.cat(o) for s, o in zip(STAGES, outputs,
                                                                                                   strict=True)}})
    features = {key: torch.cat([part[key] for part in parts]) for key in parts[0]} | extra
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(features, path(perturbation, view, profile))
    log(f"cached {perturbation}/{view}: {len(missing)} more cells, {len(features['cells'])} in all")
    return features
