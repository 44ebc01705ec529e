"""Tiling: small defects on large parts, for any registered inspection method.

The ROI is cut into overlapping square tiles (``tile_grid``); each tile position has a model of its
own (a memory per tile position: the positional memory extended to tile coordinates), fitted on the
goods' tiles at that position and judging only those; the tiles' maps are stitched back into one map
of the ROI's resolution (``stitch``, maximum where tiles overlap) and the part's score is its worst
tile's. Memory and time grow linearly with the tile count, which ``MAX_TILES`` bounds; ``estimate_cost``
says the cost before training. One path: :class:`TiledModel` wraps whichever method the registry builds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.base import InspectionMethod, Judgement, NotFittedError, Progress, TrainingSetError

MAX_TILES = 64  # the most tiles one tool may cut its ROI into (memory and time are linear in it)
TILE_FILE = "tiling.json"
Box = tuple[int, int, int, int]  # y0, x0, y1, x1 in ROI pixels


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: stride ``tile - overlap``, the last tile flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(count)]
    return sorted(set(starts))


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Box]:
    """The tiles covering a ``height`` x ``width`` ROI: ``tile`` px squares (smaller where the ROI is),
    neighbours overlapping by at least ``overlap`` px, row-major."""
    if tile < 16 or not 0 <= overlap < tile:
        raise ValueError(f"a tile is at least 16 px and overlaps less than its size (tile {tile}, overlap {overlap})")
    return [(y, x, min(y + tile, height), min(x + tile, width))
            for y in _starts(height, tile, overlap) for x in _starts(width, tile, overlap)]


def stitch(maps: list[np.ndarray], boxes: list[Box], shape: tuple[int, int]) -> np.ndarray:
    """One ``shape`` map from the tiles' maps (any resolution, resized to their box), the maximum where
    tiles overlap: a defect seen by any tile that covers it shows."""
    out = np.zeros(shape, np.float32)
    for tile_map, (y0, x0, y1, x1) in zip(maps, boxes, strict=True):
        resized = tile_map if tile_map.shape == (y1 - y0, x1 - x0) else cv2.resize(
            tile_map.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        np.maximum(out[y0:y1, x0:x1], resized, out=out[y0:y1, x0:x1])
    return out


def auto_tile(height: int, width: int, defect_px: int, native_px: int) -> tuple[int, int]:
    """Tile size and overlap for a ROI where the smallest defect to find is about ``defect_px``: a tile
    at most ``8 x defect_px`` (a defect keeps >= 1/8 of the tile the network sees at ``native_px``), not
    below the native resolution, overlapping by one defect, and enlarged until at most ``MAX_TILES``."""
    tile = max(native_px, min(8 * defect_px, max(height, width)))
    overlap = min(defect_px, tile // 4)
    while len(tile_grid(height, width, tile, overlap)) > MAX_TILES:
        tile = int(tile * 1.25)
    return tile, overlap


@dataclass(frozen=True)
class TilingCost:
    """What a tiled tool costs, before training: tiles, memory and scoring time per part."""

    tiles: int
    mb: float
    ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"tiles": self.tiles, "mb": round(self.mb, 1), "ms": round(self.ms, 1)}


# Measured per tile position (bench/tiling.py, 900 px tiles, balanced profile, load ~1.3): MB of the tile's
# saved model and ms to judge one tile at batch 1 on 2 cores. Methods not measured take the largest.
PER_TILE: dict[str, tuple[float, float]] = {"anomaly": (3.4, 34.0)}


def tile_cost(method: str) -> tuple[float, float]:
    """MB and ms one tile position costs with ``method`` (``PER_TILE``)."""
    return PER_TILE.get(method, max(PER_TILE.values()))


def estimate_cost(height: int, width: int, tile: int, overlap: int, *, mb_per_tile: float,
                  ms_per_tile: float, base_mb: float = 0.0) -> TilingCost:
    """Tiles, MB and ms of a tiled tool on a ``height`` x ``width`` ROI (linear in the tile count; the
    per-tile figures are a method's measured ones, bench/RESULTS.md "Tiling")."""
    tiles = len(tile_grid(height, width, tile, overlap))
    return TilingCost(tiles, base_mb + tiles * mb_per_tile, tiles * ms_per_tile)


def _normalised(score: float, threshold: float) -> float:
    """A score in [0, 1] remapped piecewise-linearly so that ``threshold`` becomes 0.5 (tiles whose models
    calibrated different thresholds compare on one scale)."""
    if threshold <= 0.0 or threshold >= 1.0:
        return score
    return 0.5 * score / threshold if score <= threshold else 0.5 + 0.5 * (score - threshold) / (1.0 - threshold)


class TiledModel:
    """Any inspection method, one model per tile position (see the module doc); follows
    ``models.base.InspectionMethod``. ``build(seed)`` makes an unfitted model of the wrapped method.

    The grid is cut on the first training image's size (the ROI's); other sizes are resized to it, and
    the stitched map back to the judged image's size. A labelled method learns each tile with its
    image's label (a defect seen in one tile teaches every tile of that image: weak labels).
    """

    format_version = 1

    def __init__(self, build: Callable[[int], InspectionMethod], *, tile_px: int, overlap: int, seed: int = 0) -> None:
        self.build = build
        self.tile_px = tile_px
        self.overlap = overlap
        self.seed = seed
        probe = build(seed)
        self.method = probe.method
        self.learns_from = probe.learns_from
        self.profile = probe.profile
        self.good_class = probe.good_class

    def get_params(self) -> dict[str, Any]:
        return {"tile_px": self.tile_px, "overlap": self.overlap, "seed": self.seed}

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError("this tiled model is not fitted yet: call fit or load first")

    def _tiles(self, image: np.ndarray) -> list[np.ndarray]:
        """``image`` (resized to the training images' size where it differs) cut into the grid's tiles."""
        if image.shape[:2] != self.shape_:
            image = cv2.resize(image, self.shape_[::-1], interpolation=cv2.INTER_AREA)
        return [np.ascontiguousarray(image[y0:y1, x0:x1]) for y0, x0, y1, x1 in self.boxes_]

    def fit(self, images: list[np.ndarray], labels: list[str] | None = None,
            progress: Progress | None = None) -> TiledModel:
        """One model per tile position, fitted on that position's tiles of ``images``."""
        if not images:
            raise TrainingSetError("a tiled model needs training images")
        self.shape_ = tuple(images[0].shape[:2])
        self.boxes_ = tile_grid(*self.shape_, self.tile_px, self.overlap)
        if len(self.boxes_) > MAX_TILES:
            raise TrainingSetError(f"{len(self.boxes_)} tiles exceed the limit of {MAX_TILES}: use larger tiles")
        tiles = [self._tiles(image) for image in images]
        models = []
        for index in range(len(self.boxes_)):
            model = self.build(self.seed + index)
            column = [t[index] for t in tiles]
            models.append(model.fit(column, labels if labels is not None else [self.good_class] * len(column)))
            if progress:
                progress("tiles", (index + 1) / len(self.boxes_))
        self.models_ = models
        self.threshold_, self.review_band_ = 0.5, float(np.mean([m.review_band_ for m in models]))
        self.reference_scores_ = self._reference_scores()
        return self

    def _reference_scores(self) -> list[float]:
        """Per training image, its worst tile's out-of-fold score (normalised)."""
        per_tile = [[_normalised(s, m.threshold_) for s in m.reference_scores_] for m in self.models_]
        lengths = {len(scores) for scores in per_tile}
        return [max(column) for column in zip(*per_tile, strict=True)] if len(lengths) == 1 else []

    def judge(self, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        """Each image's tiles judged by their position's model; the worst tile's score and label, the
        stitched map at the image's resolution and its regions above 0.5."""
        from models.anomaly.regions import find_regions

        self._check_fitted()
        tiles = [self._tiles(image) for image in images]
        per_tile = [model.judge([t[index] for t in tiles], tta=tta) for index, model in enumerate(self.models_)]
        out = []
        for row, image in enumerate(images):
            judged = [(j[row], m) for j, m in zip(per_tile, self.models_, strict=True)]
            scores = [_normalised(float(j.score), m.threshold_) for j, m in judged]
            worst = int(np.argmax(scores))
            maps = [j.map if j.map is not None else np.full((1, 1), s, np.float32)
                    for (j, _), s in zip(judged, scores, strict=True)]
            stitched = stitch(maps, self.boxes_, self.shape_)
            if stitched.shape != image.shape[:2]:
                stitched = cv2.resize(stitched, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
            out.append(Judgement(float(np.clip(scores[worst], 0.0, 1.0)), dict(judged[worst][0].probabilities),
                                 judged[worst][0].label, stitched, None, find_regions(stitched, self.threshold_)))
        return out

    def training_report(self, sample_ids: list[Any] | None = None) -> dict[str, Any]:
        self._check_fitted()
        report = self.models_[0].training_report(sample_ids)
        return {**report, "tiling": {"tiles": len(self.boxes_), "tile_px": self.tile_px, "overlap": self.overlap,
                                     "roi": list(self.shape_[::-1])}}

    def check_training_set(self, counts: dict[str, int], good_class: str) -> None:
        type(self.build(self.seed)).check_training_set(counts, good_class)

    def save(self, folder: Path) -> None:
        """Each tile position's model in ``folder/tile_<i>``, the grid in ``tiling.json``."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for index, model in enumerate(self.models_):
            model.save(folder / f"tile_{index:03d}")
        (folder / TILE_FILE).write_text(json.dumps({
            "format_version": self.format_version, "tile_px": self.tile_px, "overlap": self.overlap,
            "seed": self.seed, "shape": list(self.shape_), "boxes": [list(b) for b in self.boxes_],
            "threshold": self.threshold_, "review_band": self.review_band_,
            "reference_scores": self.reference_scores_}))

    @classmethod
    def load(cls, folder: Path, load_tile: Callable[[Path], InspectionMethod]) -> TiledModel:
        """The tiled model saved in ``folder``; ``load_tile`` loads one tile position's model."""
        meta = json.loads((Path(folder) / TILE_FILE).read_text())
        boxes = [(int(a), int(b), int(c), int(d)) for a, b, c, d in meta["boxes"]]
        models = [load_tile(Path(folder) / f"tile_{i:03d}") for i in range(len(boxes))]
        first = models[0]
        model = cls(lambda seed: type(first)(profile=first.profile, good_class=first.good_class, seed=seed),
                    tile_px=int(meta["tile_px"]), overlap=int(meta["overlap"]), seed=int(meta["seed"]))
        model.shape_ = (int(meta["shape"][0]), int(meta["shape"][1]))
        model.boxes_, model.models_ = boxes, models
        model.threshold_, model.review_band_ = float(meta["threshold"]), float(meta["review_band"])
        model.reference_scores_ = [float(s) for s in meta["reference_scores"]]
        return model
