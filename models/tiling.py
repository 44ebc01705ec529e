"""Tiling: small defects on large parts, for any registered inspection method.

The ROI is cut into overlapping square tiles (``tile_grid``) or, on parts made of repeated cells
separated by dark grid lines (solar modules, trays), into those cells (``grid_cells``). Two memories:

- ``position``: each tile position has a model of its own, fitted on the goods' tiles at that position
  (the positional memory extended to tile coordinates; any method, labelled ones with weak labels);
- ``shared`` (methods that learn from goods only): one anomaly model fitted on *all* the goods' tiles
  (the cells of a part are alike: 10 modules of 60 cells give 600 examples instead of 10); optionally
  (``standardise``) each tile's score standardised against the goods' own out-of-fold scores at its
  position; the part's maximum calibrated on the goods' per-part maxima.

The tiles' maps are stitched back into one map of the ROI's resolution (``stitch``, maximum where tiles
overlap) and the part's score is its worst tile's. Memory and time grow linearly with the tile count,
which ``MAX_TILES`` bounds; ``estimate_cost`` says the cost before training. The grid and the cost are plain
arithmetic in ``models.tiling_plan`` (no torch: settings and the command line use them). One path:
:class:`TiledModel` wraps whichever method the registry builds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from models.anomaly.anomaly_map import anomaly_map
from models.anomaly.calibration import Calibration, calibrate, good_only_report
from models.anomaly.regions import find_regions
from models.base import InspectionMethod, Judgement, NotFittedError, Progress, TrainingSetError, mirrored
from models.tiling_plan import MAX_TILES, Box, tile_grid

TILE_FILE = "tiling.json"
SHARED_FOLDER = "shared"  # the shared memory's model, beside tiling.json
MEMORIES = ("position", "shared")
SPREAD_SHRINK = 0.5  # share of the mean position spread mixed into each position's own (10 goods are few)
BATCH = 8  # tiles per backbone pass (60 at once: one of Lite0's 112 px stages alone would take ~290 MB)
# A shared memory's tile score: the mean of its TOP_K highest patch scores (bench/RESULTS.md "Tiling: session 9":
# with one defective cell among 60 goods the single worst patch is noisier than a few; max = 1).
TOP_K = 5


def grid_cells(gray: np.ndarray, darkness: float = 0.5) -> list[Box]:
    """The cells between the dark grid lines of a part's mean grayscale image ``(H, W)``: lines are the
    rows and columns whose mean is below ``darkness`` x the median one; cells shorter than half the
    median cell are dropped (a dark cell edge, not a cell). Empty when fewer than two cells are found."""
    def spans(profile: np.ndarray) -> list[tuple[int, int]]:
        bright = np.concatenate([[False], profile >= darkness * np.median(profile), [False]])
        edges = np.flatnonzero(np.diff(bright.astype(np.int8)))
        runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
        if not runs:
            return []
        typical = float(np.median([b - a for a, b in runs]))
        return [(a, b) for a, b in runs if b - a >= max(16.0, typical / 2)]

    rows, cols = spans(gray.mean(axis=1)), spans(gray.mean(axis=0))
    cells = [(y0, x0, y1, x1) for y0, y1 in rows for x0, x1 in cols]
    return cells if len(cells) >= 2 else []


def stitch(maps: list[np.ndarray], boxes: list[Box], shape: tuple[int, int], fill: float = 0.0) -> np.ndarray:
    """One ``shape`` map from the tiles' maps (any resolution, resized to their box), the maximum where
    tiles overlap: a defect seen by any tile that covers it shows; ``fill`` where no tile covers."""
    out = np.full(shape, fill, np.float32)
    for tile_map, (y0, x0, y1, x1) in zip(maps, boxes, strict=True):
        resized = tile_map if tile_map.shape == (y1 - y0, x1 - x0) else cv2.resize(
            tile_map.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        np.maximum(out[y0:y1, x0:x1], resized, out=out[y0:y1, x0:x1])
    return out


def tile_scores(patches: np.ndarray, top_k: int) -> np.ndarray:
    """Each tile's score from its patch scores ``(T, h, w)``: the mean of its ``top_k`` highest ``(T,)``."""
    flat = patches.reshape(len(patches), -1)
    k = max(1, min(top_k, flat.shape[1]))
    return np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


def _normalised(score: float, threshold: float) -> float:
    """A score in [0, 1] remapped piecewise-linearly so that ``threshold`` becomes 0.5 (tiles whose models
    calibrated different thresholds compare on one scale)."""
    if threshold <= 0.0 or threshold >= 1.0:
        return score
    return 0.5 * score / threshold if score <= threshold else 0.5 + 0.5 * (score - threshold) / (1.0 - threshold)


class TiledModel:
    """Any inspection method, tiled (see the module doc); follows ``models.base.InspectionMethod``.
    ``build(seed)`` makes an unfitted model of the wrapped method.

    ``memory``: ``position`` (one model per tile position) or ``shared`` (one anomaly model over all
    tiles; methods that learn from goods only), its tile scores with ``standardise`` standardised per
    position (centre and spread of the goods' out-of-fold scores there), else raw (the default: raw was
    better on bench/tiling.py, module AUC 0.883 vs 0.837 on cells, 0.78 vs 0.74 on 600 px tiles, seed 0).
    ``top_k``: a shared memory's tile score is the mean of the tile's ``top_k`` highest patch scores
    (``tile_scores``; 1: its worst patch, as before session 9).
    ``align``: cut the ROI into the cells between its dark grid lines (found on the goods' mean image;
    the regular grid of ``tile_px`` squares when none are found). The grid is cut on the first training
    image's size (the ROI's); other sizes are resized to it, and the stitched map back to the judged image's size. A
    labelled method learns each tile with its image's label (a defect seen in one tile teaches every tile
    of that image: weak labels).
    """

    format_version = 2

    def __init__(self, build: Callable[[int], InspectionMethod], *, tile_px: int, overlap: int, seed: int = 0,
                 memory: str = "position", align: bool = False, standardise: bool = False, top_k: int = TOP_K) -> None:
        if memory not in MEMORIES:
            raise ValueError(f"unknown tiled memory {memory!r}; choose one of {', '.join(MEMORIES)}")
        self.build = build
        self.tile_px = tile_px
        self.overlap = overlap
        self.seed = seed
        self.memory = memory
        self.align = align
        self.standardise = standardise
        self.top_k = top_k
        probe = build(seed)
        if memory == "shared" and probe.learns_from != "good":
            raise ValueError("a shared tiled memory needs a method that learns from good images only")
        self.method = probe.method
        self.learns_from = probe.learns_from
        self.profile = probe.profile
        self.good_class = probe.good_class

    def get_params(self) -> dict[str, Any]:
        return {"tile_px": self.tile_px, "overlap": self.overlap, "seed": self.seed, "memory": self.memory,
                "align": self.align, "standardise": self.standardise, "top_k": self.top_k}

    def _check_fitted(self) -> None:
        if not hasattr(self, "boxes_"):
            raise NotFittedError("this tiled model is not fitted yet: call fit or load first")

    def _tiles(self, image: np.ndarray) -> list[np.ndarray]:
        """``image`` (resized to the training images' size where it differs) cut into the grid's tiles."""
        if image.shape[:2] != self.shape_:
            image = cv2.resize(image, self.shape_[::-1], interpolation=cv2.INTER_AREA)
        return [np.ascontiguousarray(image[y0:y1, x0:x1]) for y0, x0, y1, x1 in self.boxes_]

    def _grid(self, images: list[np.ndarray]) -> list[Box]:
        """The tiles' boxes: the cells between grid lines with ``align`` (when found), else the regular grid."""
        if self.align:
            gray = np.mean([image.mean(axis=2) if image.ndim == 3 else image for image in images], axis=0)
            cells = grid_cells(gray)
            if cells:
                return cells
        return tile_grid(*self.shape_, self.tile_px, self.overlap)

    @property
    def tiles_per_image(self) -> int:
        self._check_fitted()
        return len(self.boxes_)

    def fit(self, images: list[np.ndarray], labels: list[str] | None = None,
            progress: Progress | None = None) -> TiledModel:
        """The tile models (see the class doc) from ``images``' tiles."""
        if not images:
            raise TrainingSetError("a tiled model needs training images")
        self.shape_ = tuple(images[0].shape[:2])
        resized = [self._resized(image) for image in images]
        self.boxes_ = self._grid(resized)
        if len(self.boxes_) > MAX_TILES:
            raise TrainingSetError(f"{len(self.boxes_)} tiles exceed the limit of {MAX_TILES}: use larger tiles")
        if self.memory == "shared":
            return self._fit_shared(resized, labels, progress)
        tiles = [self._tiles(image) for image in resized]
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

    def _resized(self, image: np.ndarray) -> np.ndarray:
        return image if image.shape[:2] == self.shape_ else cv2.resize(image, self.shape_[::-1],
                                                                         interpolation=cv2.INTER_AREA)

    def _fit_shared(self, images: list[np.ndarray], labels: list[str] | None,
                    progress: Progress | None) -> TiledModel:
        """One anomaly model over all the goods' tiles; per position, the centre and spread of the goods'
        out-of-fold tile scores; the calibration of the goods' standardised per-image maxima."""
        goods = images if labels is None else [i for i, label in zip(images, labels, strict=True)
                                               if label == self.good_class]
        if len(goods) < 2:
            raise TrainingSetError("a shared tiled memory needs at least two good images")
        self.inner_ = self.build(self.seed).fit([t for image in goods for t in self._tiles(image)], progress=progress)
        out_of_fold = tile_scores(self.inner_.out_of_fold_patches_, self.top_k).astype(np.float64).reshape(
            len(goods), len(self.boxes_))
        spread = out_of_fold.std(axis=0, ddof=1)
        spread = np.sqrt((1 - SPREAD_SHRINK) * spread**2 + SPREAD_SHRINK * np.mean(spread**2))
        self.centre_, self.spread_ = out_of_fold.mean(axis=0), np.maximum(spread, 1e-9)
        if not self.standardise:  # raw tile scores: one scale for every position
            self.centre_, self.spread_ = np.zeros_like(self.centre_), np.ones_like(self.spread_)
        maxima = self._standardised(out_of_fold).max(axis=1)
        self.calibration_ = calibrate(maxima, self.inner_.false_alarm)
        self.n_images_, self.ignored_ = len(goods), len(images) - len(goods)
        self.threshold_, self.review_band_ = 0.5, float(self.inner_.review_band_)
        self.reference_scores_ = [float(s) for s in self.calibration_.normalise(maxima)]
        return self

    def _standardised(self, raw: np.ndarray) -> np.ndarray:
        """Raw tile scores ``(..., tiles)`` in spreads above their position's centre."""
        return (raw - self.centre_) / self.spread_

    def _reference_scores(self) -> list[float]:
        """Per training image, its worst tile's out-of-fold score (normalised)."""
        per_tile = [[_normalised(s, m.threshold_) for s in m.reference_scores_] for m in self.models_]
        lengths = {len(scores) for scores in per_tile}
        return [max(column) for column in zip(*per_tile, strict=True)] if len(lengths) == 1 else []

    def judge(self, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        """Each image's tiles judged by their model; the worst tile's score and label, the stitched map at
        the image's resolution and its regions above 0.5."""
        self._check_fitted()
        if self.memory == "shared":
            return [self._judge_shared(image, tta) for image in images]
        tiles = [self._tiles(image) for image in images]
        per_tile = [model.judge([t[index] for t in tiles], tta=tta) for index, model in enumerate(self.models_)]
        out = []
        for row, image in enumerate(images):
            judged = [(j[row], m) for j, m in zip(per_tile, self.models_, strict=True)]
            scores = [_normalised(float(j.score), m.threshold_) for j, m in judged]
            worst = int(np.argmax(scores))
            maps = [j.map if j.map is not None else np.full((1, 1), s, np.float32)
                    for (j, _), s in zip(judged, scores, strict=True)]
            stitched = self._at_size(stitch(maps, self.boxes_, self.shape_), image)
            out.append(Judgement(float(np.clip(scores[worst], 0.0, 1.0)), dict(judged[worst][0].probabilities),
                                 judged[worst][0].label, stitched, None, find_regions(stitched, self.threshold_)))
        return out

    def _at_size(self, score_map: np.ndarray, image: np.ndarray) -> np.ndarray:
        if score_map.shape == image.shape[:2]:
            return score_map
        return cv2.resize(score_map, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)

    def _patch_scores(self, tiles: list[np.ndarray], tta: bool) -> np.ndarray:
        """The shared model's patch scores ``(T, h, w)`` of the tiles, ``BATCH`` tiles per backbone pass; with
        ``tta`` the mean with the mirrored tiles' (mirrored back)."""
        patches = np.concatenate([self.inner_.raw_scores(tiles[i: i + BATCH])[1] for i in range(0, len(tiles), BATCH)])
        if tta:
            patches = (patches + self._patch_scores(mirrored(tiles), False)[..., ::-1]) / 2
        return patches

    def _judge_shared(self, image: np.ndarray, tta: bool) -> Judgement:
        """One image judged with the shared memory: its tiles' scores (``top_k`` patches, standardised with
        ``standardise``), the worst one calibrated; each tile's map (its patch scores upsampled and blurred)
        shifted so that it peaks at the tile's score, so the stitched map peaks in the worst tile."""
        patches = self._patch_scores(self._tiles(image), tta)
        standard = self._standardised(tile_scores(patches, self.top_k))
        maps = []
        for p, (y0, x0, y1, x1), s, top in zip(patches, self.boxes_, self.spread_, standard, strict=True):
            tile_map = anomaly_map(torch.from_numpy(np.ascontiguousarray(p)), (y1 - y0, x1 - x0), self.inner_.sigma)
            maps.append((tile_map - tile_map.max()) / float(s) + float(top))
        raw_map = self._at_size(stitch(maps, self.boxes_, self.shape_, fill=float(min(m.min() for m in maps))), image)
        score_map = self.calibration_.normalise_map(raw_map)
        score = float(np.clip(self.calibration_.normalise(float(standard.max())), 0.0, 1.0))
        return Judgement(score, {}, None, score_map, raw_map, find_regions(score_map, self.threshold_))

    def training_report(self, sample_ids: list[Any] | None = None) -> dict[str, Any]:
        self._check_fitted()
        if self.memory == "shared":
            report = good_only_report("anomaly model", self.good_class, self.n_images_, self.ignored_,
                                      self.calibration_, self.reference_scores_)
        else:
            report = self.models_[0].training_report(sample_ids)
        return {**report, "tiling": {"tiles": len(self.boxes_), "tile_px": self.tile_px, "overlap": self.overlap,
                                     "memory": self.memory, "align": self.align, "roi": list(self.shape_[::-1])}}

    def check_training_set(self, counts: dict[str, int], good_class: str) -> None:
        type(self.build(self.seed)).check_training_set(counts, good_class)

    def save(self, folder: Path) -> None:
        """The shared model in ``folder/shared`` or each tile position's in ``folder/tile_<i>``, the grid
        (and the shared memory's per-position statistics and calibration) in ``tiling.json``."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "format_version": self.format_version, **self.get_params(), "shape": list(self.shape_),
            "boxes": [list(b) for b in self.boxes_], "threshold": self.threshold_, "review_band": self.review_band_,
            "reference_scores": self.reference_scores_}
        if self.memory == "shared":
            self.inner_.save(folder / SHARED_FOLDER)
            meta.update(centre=self.centre_.tolist(), spread=self.spread_.tolist(), n_images=self.n_images_,
                        ignored=self.ignored_, calibration={"threshold": self.calibration_.threshold,
                                                            "scale": self.calibration_.scale})
        else:
            for index, model in enumerate(self.models_):
                model.save(folder / f"tile_{index:03d}")
        (folder / TILE_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: Path, load_tile: Callable[[Path], InspectionMethod]) -> TiledModel:
        """The tiled model saved in ``folder``; ``load_tile`` loads one saved inner model."""
        meta = json.loads((Path(folder) / TILE_FILE).read_text())
        boxes = [(int(a), int(b), int(c), int(d)) for a, b, c, d in meta["boxes"]]
        memory = str(meta.get("memory", "position"))
        models = ([load_tile(Path(folder) / SHARED_FOLDER)] if memory == "shared"
                  else [load_tile(Path(folder) / f"tile_{i:03d}") for i in range(len(boxes))])
        first = models[0]
        model = cls(lambda seed: type(first)(profile=first.profile, good_class=first.good_class, seed=seed),
                    tile_px=int(meta["tile_px"]), overlap=int(meta["overlap"]), seed=int(meta["seed"]),
                    memory=memory, align=bool(meta.get("align", False)),
                    standardise=bool(meta.get("standardise", False)), top_k=int(meta.get("top_k", 1)))
        model.shape_ = (int(meta["shape"][0]), int(meta["shape"][1]))
        model.boxes_ = boxes
        if memory == "shared":
            model.inner_ = first
            model.centre_, model.spread_ = np.asarray(meta["centre"]), np.asarray(meta["spread"])
            model.calibration_ = Calibration(float(meta["calibration"]["threshold"]),
                                             float(meta["calibration"]["scale"]))
            model.n_images_, model.ignored_ = int(meta["n_images"]), int(meta["ignored"])
        else:
            model.models_ = models
        model.threshold_, model.review_band_ = float(meta["threshold"]), float(meta["review_band"])
        model.reference_scores_ = [float(s) for s in meta["reference_scores"]]
        return model
