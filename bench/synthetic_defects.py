"""Synthetic solar-cell defects with exact masks, drawn on real good ELPV cells (bench/anomaly_maps.py).

Three kinds that look like what electroluminescence images of cells show (Deitsch et al. 2019):

* ``crack``: a thin dark polyline (1-3 px wide) along a random path, darkened by 35-75 %;
* ``inactive``: a dark area (filled ellipse or polygon, 12-45 px radius) with a soft edge,
  darkened by 40-85 %, like a cell part cut off by a crack;
* ``spot``: a small bright or dark blob (3-10 px radius) with a soft edge, 40-80 % contrast.

Deliberately separate from the product's own generator (``models/anomaly/synthetic.py``, which
shapes the anomaly model's projection): an evaluation drawn by the training generator would grade
the model on its own homework. Position, size, shape and contrast come from the caller's seeded
``numpy`` Generator. The mask is the drawn shape (the soft edge's fringe outside it is not marked).
Run as a script, it writes a small MVTec AD-layout folder of ELPV goods and such defects (to try
``--mvtec`` without MVTec data):

    .venv/bin/python bench/synthetic_defects.py OUT_DIR [--train 12] [--test-good 4] [--defects 6]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

KINDS = ("crack", "inactive", "spot")


def _darken(cell: np.ndarray, alpha: np.ndarray, contrast: float) -> np.ndarray:
    return cell * (1.0 - contrast * alpha)


def _crack(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """A random-walk polyline: 3-6 segments of 10-35 px, turning up to 45 degrees at each joint."""
    height, width = shape
    point = np.array([rng.uniform(20, width - 20), rng.uniform(20, height - 20)])
    angle = rng.uniform(0, 2 * np.pi)
    points = [point]
    for _ in range(rng.integers(3, 7)):
        angle += rng.uniform(-np.pi / 4, np.pi / 4)
        point = point + rng.uniform(10, 35) * np.array([np.cos(angle), np.sin(angle)])
        points.append(point)
    mask = np.zeros(shape, np.uint8)
    cv2.polylines(mask, [np.round(points).astype(np.int32)], False, 1, thickness=int(rng.integers(1, 4)))
    return mask, mask.astype(np.float64), rng.uniform(0.35, 0.75)


def _blob(shape: tuple[int, int], rng: np.random.Generator, radius: tuple[float, float], polygon: bool,
          edge: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A filled ellipse (or polygon around a random centre) and its soft-edged version (Gaussian)."""
    height, width = shape
    centre = np.array([rng.uniform(15, width - 15), rng.uniform(15, height - 15)])
    mask = np.zeros(shape, np.uint8)
    if polygon:
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(5, 9)))
        radii = rng.uniform(*radius, angles.size)
        points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    else:
        axes = (int(rng.uniform(*radius)), int(rng.uniform(*radius)))
        cv2.ellipse(mask, tuple(int(c) for c in np.round(centre)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    sigma = rng.uniform(*edge)
    return mask, cv2.GaussianBlur(mask.astype(np.float64), (0, 0), sigmaX=sigma, sigmaY=sigma)


def draw_defect(cell: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One defect of ``kind`` on a grayscale uint8 cell ``(H, W)``: the defective cell ``(H, W)`` uint8
    and its mask ``(H, W)`` bool (never empty)."""
    shape = cell.shape
    image = cell.astype(np.float64)
    if kind == "crack":
        mask, alpha, contrast = _crack(shape, rng)
        out = _darken(image, alpha, contrast)
    elif kind == "inactive":
        mask, alpha = _blob(shape, rng, (12, 45), polygon=bool(rng.integers(2)), edge=(1.5, 4.0))
        out = _darken(image, alpha, rng.uniform(0.4, 0.85))
    elif kind == "spot":
        mask, alpha = _blob(shape, rng, (3, 10), polygon=False, edge=(1.0, 2.0))
        contrast = rng.uniform(0.4, 0.8)
        out = image + contrast * alpha * (255 - image) if rng.integers(2) else _darken(image, alpha, contrast)
    else:
        raise ValueError(f"unknown defect kind {kind!r}; choose one of {', '.join(KINDS)}")
    assert mask.any(), "a drawn defect covers at least one pixel"
    return np.clip(np.round(out), 0, 255).astype(np.uint8), mask.astype(bool)


def write_mvtec_folder(root: Path, train: list[np.ndarray], test_good: list[np.ndarray],
                       defect_bases: list[np.ndarray], rng: np.random.Generator) -> Path:
    """An MVTec AD category folder of grayscale cells ``(H, W)``: ``train/good``, ``test/good`` and
    one defect per base cell, kinds in turn, in ``test/<kind>`` with ``ground_truth/<kind>/<stem>_mask.png``."""
    for folder, cells in (("train/good", train), ("test/good", test_good)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index, cell in enumerate(cells):
            Image.fromarray(cell).save(root / folder / f"{index:03d}.png")
    for index, cell in enumerate(defect_bases):
        kind = KINDS[index % len(KINDS)]
        image, mask = draw_defect(cell, kind, rng)
        for folder in (root / "test" / kind, root / "ground_truth" / kind):
            folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "test" / kind / f"{index:03d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "ground_truth" / kind / f"{index:03d}_mask.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a small MVTec AD-layout folder of ELPV goods "
                                                 "and synthetic defects.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=12)
    parser.add_argument("--test-good", type=int, default=4)
    parser.add_argument("--defects", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from elpv_dataset.utils import load_dataset

    images, probability, _ = load_dataset()
    rng = np.random.default_rng(args.seed)
    goods = rng.permutation(np.flatnonzero(probability < 0.5))
    cut = np.cumsum([args.train, args.test_good, args.defects])
    train, test_good, bases = (list(images[goods[a:b]]) for a, b in zip([0, *cut[:-1]], cut, strict=True))
    print(write_mvtec_folder(args.out, train, test_good, bases, rng))


if __name__ == "__main__":
    main()
