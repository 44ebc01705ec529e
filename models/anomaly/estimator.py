"""Anomaly detector trained on good images only (PatchCore-style), scikit-learn estimator contract.

Hyper-parameters in the keyword-only constructor, ``fit`` returns ``self``, learned state ends with
``_``. ``predict`` gives per image a normalised score (0.5 at the calibrated threshold), an anomaly
map at the image's resolution and the regions above the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.anomaly.anomaly_map import DEFAULT_SIGMA, anomaly_map
from models.anomaly.calibration import FALSE_ALARM, Calibration, calibrate, good_only_report
from models.anomaly.components import coreset_indices, embed_patches
from models.anomaly.regions import Region, find_regions
from models.anomaly.synthetic import covered_cells, synthetic_defect
from models.anomaly.torch_model import AnomalyGraph, PatchCoreModel, layer_stages, split_views
from models.artifacts import ArtifactError, load_method_artifact, save_method_artifact
from models.augment import LINE_VARIANTS
from models.backbones.registry import get_backbone
from models.base import Forward, Judgement, NotFittedError, Progress, TrainingSetError, mirrored
from models.device import get_device
from models.positional_memory import distances_to_each_good
from models.preprocess import standardise_intensity, to_batch
from models.profiles import DEFAULT_PROFILE, get_profile
from models.projection import patches_at, projection_from_defect_patches

BATCH = 16
MIN_POSITION_SCALE = 0.1  # a position's scale is at least this share of the mean one
MAX_FOLDS = 10  # out-of-fold calibration: leave-one-out up to this many goods, this many folds beyond
MIN_GOOD_IMAGES = 5  # the smallest training set the product accepts (check_training_set)
REVIEW_BAND = 0.1  # normalised scores within this distance of 0.5 go to a person


def _identity(image: np.ndarray) -> np.ndarray:
    return image


def _mirror(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def _flip(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::-1])


def _rotate_half(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::-1, ::-1])


# Augmentations of the goods that keep an aligned part's layout plausible (no rotation by 90 degrees);
# ``line``: the light, position and motion a line sees (``models.augment.LINE_VARIANTS``).
AUGMENTATIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], ...]] = {
    "none": (_identity,),
    "flips": (_identity, _mirror, _flip, _rotate_half),
    "line": (_identity, *LINE_VARIANTS),
}


@dataclass(frozen=True)
class _Goods:
    """What fitting learns from, kept with the model so that ``extend`` can refit with more goods: the
    goods' unprojected patch features ``raw (n * variants, C, h, w)`` (each good's untransformed copy
    first, goods in order), with ``test_flip`` their mirror images' ``mirrored (n, C, h, w)``, and the
    synthetic defects' patch features where a defect was drawn ``defects (P, C)``, with the flat grid
    cell ``cells (P,)`` and the good it was drawn on ``owners (P,)``."""

    raw: torch.Tensor
    variants: int
    mirrored: torch.Tensor | None
    defects: torch.Tensor
    cells: torch.Tensor
    owners: torch.Tensor

    @property
    def n_images(self) -> int:
        return self.raw.shape[0] // self.variants

    @property
    def sources(self) -> torch.Tensor:
        """The good each row of ``raw`` shows ``(n * variants,)``."""
        return torch.arange(self.n_images).repeat_interleave(self.variants)

    @property
    def originals(self) -> torch.Tensor:
        """The untransformed goods' features ``(n, C, h, w)``."""
        return self.raw[:: self.variants]

    def joined(self, other: _Goods) -> _Goods:
        """These goods followed by ``other``'s (same augmentation), owners renumbered."""
        mirrored = None if self.mirrored is None or other.mirrored is None else torch.cat([self.mirrored,
                                                                                           other.mirrored])
        return _Goods(torch.cat([self.raw, other.raw]), self.variants, mirrored,
                      torch.cat([self.defects, other.defects]), torch.cat([self.cells, other.cells]),
                      torch.cat([self.owners, other.owners + self.n_images]))


@dataclass(frozen=True)
class AnomalyResult:
    """One image's verdict material: scores, the map (normalised, image resolution) and regions."""

    score: float  # normalised: 0.5 at the threshold
    raw_score: float
    map: np.ndarray = field(repr=False)  # (H, W) float32 in (0, 1); saturates at 1 far above the threshold
    regions: list[Region]
    raw_map: np.ndarray = field(repr=False)  # (H, W) float32 raw scores: ranks pixels where ``map`` saturates


class PatchCoreDetector:
    """Learns what good parts look like from good images only; flags what looks different.

    Args:
        profile: backbone profile (``fast``, ``balanced``, ``accurate``).
        good_class: the class whose images ``fit`` learns from when given labels.
        layers: backbone stages whose patch features are concatenated.
        input_size: square network input in pixels (None: the profile's).
        pool: local averaging neighbourhood of the patch features.
        standardise: scale each image's intensities to a common mean and contrast before the
            backbone (lighting and exposure vary between parts and cameras).
        augment: augmentation of the goods before building the memory (``none``, ``flips``, ``line``).
        test_flip: score each image and its mirror image and average their patch scores (steadier
            scores on parts that are symmetric left to right: +0.004 ELPV AUC, for a second backbone
            pass per image; off by default, the Live page has its own mirror toggle).
        position_shrink: share of the mean position scale mixed into each position's own scale (with
            few goods, a position's own leave-one-out mean is noisy).
        radius: a patch is compared with good patches at most this many grid cells away (parts are
            aligned; raise it for parts that shift in the fixture).
        synthetic_images: about how many synthetic defects (``models.anomaly.synthetic``) are drawn on
            the goods, the same number on each and at least one, to learn the projection from (ELPV:
            +0.03 AUC with 10 goods, and still +0.008 from 3 to 12 defects per good); 0 keeps the raw
            patch features.
        projection_dims: discriminant directions the patch features are projected onto.
        shrinkage: share of the identity in the goods' residual covariance of the projection.
        defect_patches: most deviating patches of each synthetic defect image the projection learns
            from when no drawn mask covers a grid cell (defects all smaller than the grid sees).
        bank_mb: largest memory in MB (beyond it, a k-center subset of the good images is kept).
        sigma: Gaussian blur of the anomaly map, in output pixels.
        false_alarm: the calibration rule's alpha (see models.anomaly.calibration).
        seed: seed of the synthetic defects and of the subset selection.
    """

    method = "anomaly"
    format_version = 4  # artifact layout: projection (C, D) + positional memory (h, w, K, D) + shrunk position scale
    learns_from = "good"
    tile_memory = "shared"  # tiled, one model over all tiles (models.tiling; out_of_fold_raw_ feeds it)

    def __init__(self, *, profile: str = DEFAULT_PROFILE, good_class: str = "good", layers: tuple[int, ...] = (3, 4),
                 input_size: int | None = None, pool: int = 3, standardise: bool = True, augment: str = "none",
                 test_flip: bool = False,
                 position_shrink: float = 0.3, radius: int = 1, synthetic_images: int = 240, projection_dims: int = 32,
                 shrinkage: float = 0.1, defect_patches: int = 5, bank_mb: float = 48.0, sigma: float = DEFAULT_SIGMA,
                 false_alarm: float = FALSE_ALARM, seed: int = 0) -> None:
        self.profile = profile
        self.good_class = good_class
        self.layers = layers
        self.input_size = input_size
        self.pool = pool
        self.standardise = standardise
        self.augment = augment
        self.test_flip = test_flip
        self.position_shrink = position_shrink
        self.radius = radius
        self.synthetic_images = synthetic_images
        self.projection_dims = projection_dims
        self.shrinkage = shrinkage
        self.defect_patches = defect_patches
        self.bank_mb = bank_mb
        self.sigma = sigma
        self.false_alarm = false_alarm
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"profile": self.profile, "good_class": self.good_class, "layers": list(self.layers),
                "input_size": self.input_size, "pool": self.pool, "standardise": self.standardise,
                "augment": self.augment, "test_flip": self.test_flip, "position_shrink": self.position_shrink,
                "radius": self.radius, "synthetic_images": self.synthetic_images,
                "projection_dims": self.projection_dims,
                "shrinkage": self.shrinkage, "defect_patches": self.defect_patches, "bank_mb": self.bank_mb,
                "sigma": self.sigma, "false_alarm": self.false_alarm, "seed": self.seed}

    # --- features ------------------------------------------------------------------------------
    @property
    def size_(self) -> int:
        return self.input_size or get_profile(self.profile).input_size

    def stage_features(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        """The backbone's outputs ``[(B, C_s, H_s, W_s)]`` at ``layers`` (on ``get_device()``) for RGB uint8
        images."""
        backbone = get_backbone(get_profile(self.profile).backbone)
        if self.standardise:
            images = [standardise_intensity(image) for image in images]
        with torch.inference_mode():
            return layer_stages(backbone, to_batch(images, self.size_).to(get_device()), self.layers)

    def view_stages(self, images: list[np.ndarray]) -> list[list[torch.Tensor]]:
        """The stage outputs of each view the scores are made of: the images, then (with ``test_flip``)
        their mirror images; one backbone pass."""
        if not self.test_flip:
            return [self.stage_features(images)]
        return split_views(self.stage_features(images + [_mirror(image) for image in images]), len(images))

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, images: list[np.ndarray], labels: list[str] | None = None,
            progress: Progress | None = None) -> PatchCoreDetector:
        """Learn from the good RGB uint8 images ``(H, W, 3)`` (at least three): all of ``images``, or with
        ``labels`` those labelled ``good_class`` (the others are ignored, as the training report says)."""
        report = progress or (lambda stage, fraction: None)
        goods_images = self._goods_of(images, labels)
        if len(goods_images) < 3:
            raise TrainingSetError("an anomaly model needs at least three good images")
        if not 0.0 <= self.position_shrink <= 1.0:
            raise ValueError(f"position_shrink must be within [0, 1], not {self.position_shrink}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {self.augment!r}; choose one of {', '.join(AUGMENTATIONS)}")
        goods = self._embed_goods(goods_images, report, synthetic=True)
        return self._fit_goods(goods, len(images) - len(goods_images), report)

    def extend(self, images: list[np.ndarray], labels: list[str] | None = None,
               progress: Progress | None = None) -> PatchCoreDetector:
        """A new fitted detector that also knows the good RGB uint8 images ``(H, W, 3)`` given (with
        ``labels``, those labelled ``good_class``), in seconds instead of a full ``fit``; this one is
        left unchanged.

        The same learning as ``fit`` on all the goods (projection, memory, position scale and out-of-fold
        calibration), from this model's stored goods' features and synthetic defects (``goods_``) plus the
        new goods' features: only the backbone passes over the new goods are made. What differs from a
        full ``fit``: no synthetic defect is drawn on the new goods (those of the old goods are kept; a
        ``fit`` on all the goods draws ``synthetic_images`` spread over all of them), measured by
        ``bench/anomaly_extend.py``.
        """
        self._check_fitted()
        if not hasattr(self, "goods_"):
            raise TrainingSetError("this anomaly model was saved without its goods' features "
                                   "(trained before models could be extended): retrain it once")
        report = progress or (lambda stage, fraction: None)
        goods_images = self._goods_of(images, labels)
        if not goods_images:
            raise TrainingSetError("no new good image to add to the anomaly model")
        added = self._embed_goods(goods_images, report, synthetic=False)
        extended = PatchCoreDetector(**{**self.get_params(), "layers": tuple(self.layers)})
        return extended._fit_goods(self.goods_.joined(added), len(images) - len(goods_images), report)

    def _goods_of(self, images: list[np.ndarray], labels: list[str] | None) -> list[np.ndarray]:
        """``images``, or with ``labels`` those labelled ``good_class``."""
        if labels is None:
            return images
        return [image for image, label in zip(images, labels, strict=True) if label == self.good_class]

    def _embed_goods(self, images: list[np.ndarray], report: Progress, *, synthetic: bool) -> _Goods:
        """The goods' features (``_Goods``): their augmented copies, their mirror images with
        ``test_flip`` and, when ``synthetic``, the synthetic defects drawn on them."""
        variants = AUGMENTATIONS[self.augment]
        raw = self._raw_embeddings([transform(image) for image in images for transform in variants],
                                   lambda fraction: report("features", fraction))
        mirrored = (self._raw_embeddings([_mirror(image) for image in images], lambda _: None)
                    if self.test_flip else None)
        none = (raw.new_empty(0, raw.shape[1]), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long))
        defects = (self._synthetic(images, (raw.shape[-2], raw.shape[-1]), report)
                   if synthetic and self.synthetic_images > 0 else none)
        return _Goods(raw, len(variants), mirrored, *defects)

    def _fit_goods(self, goods: _Goods, ignored: int, report: Progress) -> PatchCoreDetector:
        """Fit on ``goods``: the model of all of them, calibrated on their out-of-fold scores."""
        report("coreset", 0.0)
        model = self._fit_model(goods, torch.ones(goods.n_images, dtype=torch.bool))
        report("calibration", 0.0)
        out_of_fold = self._out_of_fold_patches(goods, lambda fraction: report("calibration", fraction))
        image_scores = out_of_fold.reshape(len(out_of_fold), -1).max(axis=1).astype(np.float64)
        self.model_ = model.eval()
        self.goods_ = goods
        self.calibration_ = calibrate(image_scores, self.false_alarm)
        self.reference_scores_ = [float(s) for s in self.calibration_.normalise(image_scores)]
        self.out_of_fold_raw_ = image_scores  # (n,) raw: the shared tiled memory's per-position statistics
        self.out_of_fold_patches_ = out_of_fold  # (n, h, w) float32: what the tiled memory's tile scores reduce
        self.n_images_ = goods.n_images
        self.ignored_ = ignored
        self.threshold_, self.review_band_ = 0.5, REVIEW_BAND
        self.model_.to(get_device())
        return self

    @staticmethod
    def _leave_one_out(model: PatchCoreModel, embedding: torch.Tensor, sources: torch.Tensor,
                       memory_sources: torch.Tensor) -> torch.Tensor:
        """Patch distances ``(n, h, w)`` of embedded goods ``(n, D, h, w)`` (of the goods ``sources (n,)``)
        to the nearest memory patch of *another* good (``memory_sources (K,)``: the good of each memory
        image), in one pass (``distances_to_each_good``)."""
        h, w, k, d = model.memory_bank.shape
        with torch.inference_mode():
            each = distances_to_each_good(embedding, model.memory_bank.reshape(h * w, k, d), model.radius)
            own = (sources[:, None] == memory_sources[None, :]).to(each.device)  # (n, K)
            return each.masked_fill(own[:, :, None, None], float("inf")).amin(dim=1)

    def _raw_embeddings(self, images: list[np.ndarray], report: Callable[[float], None]) -> torch.Tensor:
        """Unprojected patch features ``(n, C, h, w)`` of RGB uint8 images, in batches."""
        chunks = []
        for start in range(0, len(images), BATCH):
            chunks.append(embed_patches(self.stage_features(images[start : start + BATCH]), self.pool).cpu())
            report(min(1.0, (start + BATCH) / len(images)))
        return torch.cat(chunks)

    def _synthetic(self, images: list[np.ndarray], grid: tuple[int, int],
                   report: Progress) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The patch features ``(P, C)`` where about ``synthetic_images`` synthetic defects drawn on the
        goods cover the grid (the patches the projection learns defects from), the flat grid cell of each
        ``(P,)`` and the good its defect was drawn on ``(P,)``."""
        rng = np.random.default_rng(self.seed)
        per_good = math.ceil(self.synthetic_images / len(images))
        drawn = [synthetic_defect(image, rng) for image in images for _ in range(per_good)]
        features = self._raw_embeddings([image for image, _ in drawn],
                                        lambda fraction: report("synthetic defects", fraction))
        where = torch.stack([torch.from_numpy(covered_cells(mask, grid)) for _, mask in drawn])
        patches, cells = patches_at(features, where)
        owners = torch.arange(len(images)).repeat_interleave(per_good).repeat_interleave(where.flatten(1).sum(dim=1))
        return patches, cells, owners

    def _dims(self, channels: int) -> int:
        return min(self.projection_dims, channels) if self.synthetic_images > 0 else channels

    def _fit_model(self, goods: _Goods, members: torch.Tensor) -> PatchCoreModel:
        """The model of the goods marked in ``members`` ``(n,)``: the projection learned from them and the
        synthetic defects drawn on them, their embeddings as the memory, and the position scale from
        their leave-one-out distances (shrunk towards its mean)."""
        channels = goods.raw.shape[1]
        model = PatchCoreModel(self._dims(channels), (goods.raw.shape[-2], goods.raw.shape[-1]), 0, pool=self.pool,
                               radius=self.radius, stage_dim=channels)
        if self.synthetic_images > 0:
            drawn = members[goods.owners]
            model.set_projection(projection_from_defect_patches(goods.originals[members], goods.defects[drawn],
                                                                goods.cells[drawn], self._dims(channels),
                                                                self.shrinkage))
        rows = members[goods.sources]
        embedding = model.project_patches(goods.raw[rows])
        self._set_memory(model, embedding, goods.sources[rows], torch.arange(0, len(embedding), goods.variants))
        return model

    def _set_memory(self, model: PatchCoreModel, embedding: torch.Tensor, sources: torch.Tensor,
                    firsts: torch.Tensor) -> None:
        """Store the embedded goods ``(M, D, h, w)`` (rows of the goods ``sources (M,)``; ``firsts`` the
        untransformed row of each good) as the memory (the ``_memory_subset`` rule) and the position
        scale from each good's leave-one-out distances, shrunk towards their mean."""
        keep = self._memory_subset(embedding)
        model.set_memory(embedding[keep])
        leave_one_out = self._leave_one_out(model, embedding[firsts], sources[firsts], sources[keep])
        mean = leave_one_out.mean(dim=0)  # (h, w)
        scale = (1 - self.position_shrink) * mean + self.position_shrink * mean.mean()
        model.set_position_scale(scale.clamp_min(MIN_POSITION_SCALE * float(mean.mean())))

    def _out_of_fold_patches(self, goods: _Goods, report: Callable[[float], None]) -> np.ndarray:
        """Raw patch scores ``(n, h, w)`` float32 of the goods, each by a model fitted without it (projection,
        memory and position scale; leave-one-out up to ``MAX_FOLDS`` goods, that many folds beyond), so that
        their image scores (the maxima) are exchangeable with a new good part's, as the calibration rule
        needs."""
        n = goods.n_images
        n_folds = min(n, MAX_FOLDS)
        folds = torch.from_numpy(np.random.default_rng(self.seed).permutation(n) % n_folds)
        scores = torch.empty(n, *goods.raw.shape[-2:])
        for fold in range(n_folds):
            held = folds == fold
            model = self._fit_model(goods, ~held)
            with torch.inference_mode():
                patches = model.patch_scores(model.project_patches(goods.originals[held]),
                                             None if goods.mirrored is None
                                             else model.project_patches(goods.mirrored[held]))
            scores[held] = patches.cpu()
            report((fold + 1) / n_folds)
        return scores.numpy().astype(np.float32)

    def _memory_subset(self, embedding: torch.Tensor) -> torch.Tensor:
        """Indices of the embedded goods ``(M, D, h, w)`` kept in the memory: all of them, or a k-center
        subset of whole images when they would take more than ``bank_mb``."""
        per_image = embedding[0].numel() * 4 / 2**20
        limit = max(2, int(self.bank_mb // per_image))
        if embedding.shape[0] <= limit:
            return torch.arange(embedding.shape[0])
        return coreset_indices(embedding.flatten(1), limit, seed=self.seed).sort().values

    # --- predicting ----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this anomaly model is not trained yet: call fit() or load() first")

    def score_stages(self, views: list[list[torch.Tensor]]) -> tuple[np.ndarray, torch.Tensor]:
        """Raw image scores ``(B,)`` and patch scores ``(B, h, w)`` from the backbone stage outputs of
        each view (``view_stages``)."""
        self._check_fitted()
        if len(views) != (2 if self.test_flip else 1):
            raise ValueError(f"expected {2 if self.test_flip else 1} view(s) of the images, got {len(views)}")
        with torch.inference_mode():
            scores, patches = self.model_(views[0], views[1] if self.test_flip else None)
        return scores.cpu().numpy().astype(np.float64), patches.cpu()

    def raw_scores(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Raw image scores ``(N,)`` and patch scores ``(N, h, w)`` float32 of RGB uint8 images: the network
        part of ``judge`` (``judge_outputs``)."""
        raw, patches = self.score_stages(self.view_stages(images))
        return raw, patches.numpy()

    def score_samples(self, images: list[np.ndarray]) -> np.ndarray:
        """Normalised image scores ``(N,)`` (0.5 at the threshold), without maps."""
        raw = np.concatenate([self.score_stages(self.view_stages(images[i : i + BATCH]))[0]
                              for i in range(0, len(images), BATCH)]) if images else np.empty(0)
        return self.calibration_.normalise(raw) if images else raw

    def predict(self, images: list[np.ndarray], threshold: float = 0.5) -> list[AnomalyResult]:
        """Score, map at each image's resolution and regions at or above ``threshold`` (normalised)."""
        return self.predict_from(self.raw_scores, images, threshold)

    def predict_from(self, forward: Forward, images: list[np.ndarray], threshold: float = 0.5) -> list[AnomalyResult]:
        """``predict`` with ``forward(images) -> (raw scores (N,), patch scores (N, h, w))`` computing the
        network's part (``raw_scores``, or the exported graph in another runtime)."""
        self._check_fitted()
        results = []
        for image in images:
            raw, patches = forward([image])
            raw_map = anomaly_map(torch.as_tensor(patches[0]), image.shape[:2], self.sigma)
            score_map = self.calibration_.normalise(raw_map).astype(np.float32)
            results.append(AnomalyResult(float(self.calibration_.normalise(float(raw[0]))), float(raw[0]), score_map,
                                         find_regions(score_map, threshold), raw_map))
        return results

    def judge(self, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        """One Judgement per RGB uint8 image ``(H, W, 3)``: the normalised score (0.5 at the calibrated
        threshold) and map at the image's resolution, both clipped to [0, 1], the raw map and the regions
        of the map at or above 0.5. With ``tta`` each image is also judged mirrored left-right; scores and
        (mirrored back) maps are averaged."""
        return self.judge_from(self.raw_scores, images, tta=tta)

    # --- export (models/onnx_export.py) ----------------------------------------------------------
    export_outputs = ("score", "map", "raw_score", "raw_map")  # the exported graph's outputs, in order
    judge_outputs = ("raw_score", "raw_map")  # what judge_from's ``forward`` returns

    def judge_from(self, forward: Forward, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        """``judge`` with ``forward`` computing the network's part (see ``predict_from``)."""
        results = self.predict_from(forward, images)
        scores = [r.score for r in results]
        maps = [r.map for r in results]
        raw_maps = [r.raw_map for r in results]
        if tta:
            flipped = self.predict_from(forward, mirrored(images))
            scores = [(a + b.score) / 2 for a, b in zip(scores, flipped, strict=True)]
            maps = [(a + b.map[:, ::-1]) / 2 for a, b in zip(maps, flipped, strict=True)]
            raw_maps = [(a + b.raw_map[:, ::-1]) / 2 for a, b in zip(raw_maps, flipped, strict=True)]
        judgements = []
        for score, score_map, raw_map in zip(scores, maps, raw_maps, strict=True):
            clipped = np.clip(score_map, 0.0, 1.0).astype(np.float32)
            judgements.append(Judgement(float(np.clip(score, 0.0, 1.0)), {}, None, clipped, raw_map.astype(np.float32),
                                        find_regions(clipped, self.threshold_)))
        return judgements

    def export_module(self) -> torch.nn.Module:
        """The judging network as one module: an RGB uint8 crop ``(1, H, W, 3)`` in, ``export_outputs``
        out (normalised score ``(1,)`` and patch map ``(1, h, w)``, then the raw ones), preprocessing,
        the mirror view (``test_flip``) and the calibration included."""
        self._check_fitted()
        return AnomalyGraph(get_backbone(get_profile(self.profile).backbone), self.model_, self.size_,
                            self.standardise, self.layers, self.test_flip, self.calibration_.threshold,
                            self.calibration_.scale)

    # --- the training report -------------------------------------------------------------------
    @classmethod
    def check_training_set(cls, counts: dict[str, int], good_class: str) -> None:
        """Refuse (TrainingSetError) a training set ``{class: images}`` with too few good images."""
        n_good = counts.get(good_class, 0)
        if n_good < MIN_GOOD_IMAGES:
            raise TrainingSetError(f"an anomaly model needs at least {MIN_GOOD_IMAGES} good images "
                                   f"({MIN_GOOD_IMAGES - n_good} more)")

    def training_report(self, sample_ids: list[Any] | None = None) -> dict[str, Any]:
        """What a version stores after ``fit``: the validation (goods used, images ignored, goods advised,
        the raw calibration), the normalised out-of-fold scores of the goods and notices for the user.
        ``sample_ids`` is accepted for the common contract (no per-image entries)."""
        if not hasattr(self, "ignored_"):
            raise NotFittedError("the training report exists only after fit()")
        return good_only_report("anomaly model", self.good_class, self.n_images_, self.ignored_, self.calibration_,
                                self.reference_scores_)

    # --- artifacts -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """The model, its calibration and the goods' features it was learned from (``extend`` refits on
        them: about 0.17 MB per good image and augmentation at 240 px)."""
        self._check_fitted()
        known = getattr(self, "goods_", None)  # None: loaded from a version saved before ``extend`` existed
        goods = {} if known is None else {"goods/raw": known.raw, "goods/defects": known.defects,
                                          "goods/cells": known.cells, "goods/owners": known.owners}
        if known is not None and known.mirrored is not None:
            goods["goods/mirrored"] = known.mirrored
        save_method_artifact(folder, {**self.model_.state_dict(), **goods}, self.method, self.format_version,
                             self.get_params(),
                             calibration={"threshold": self.calibration_.threshold, "scale": self.calibration_.scale},
                             reference_scores=self.reference_scores_, n_images=self.n_images_)

    @classmethod
    def load(cls, folder: Path) -> PatchCoreDetector:
        tensors, meta = load_method_artifact(folder, cls.method, cls.format_version, "anomaly model")
        try:
            params = dict(meta["params"])
            params["layers"] = tuple(params["layers"])
            detector = cls(**params)
            goods = {name.removeprefix("goods/"): tensors.pop(name) for name in list(tensors)
                     if name.startswith("goods/")}
            bank = tensors["memory_bank"]
            height, width, n_memory, feature_dim = bank.shape
            model = PatchCoreModel(feature_dim, (height, width), n_memory, pool=detector.pool, radius=detector.radius,
                                   stage_dim=tensors["projection"].shape[0])
            model.load_state_dict(tensors, strict=True)
            calibration = Calibration(float(meta["calibration"]["threshold"]), float(meta["calibration"]["scale"]))
            references = [float(s) for s in meta["reference_scores"]]
            n_images = int(meta["n_images"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ArtifactError(f"{folder} does not hold a usable anomaly model: {error}") from error
        detector.model_ = model.eval().to(get_device())
        detector.calibration_ = calibration
        detector.threshold_, detector.review_band_ = 0.5, REVIEW_BAND
        detector.reference_scores_ = references
        detector.n_images_ = n_images
        if goods:  # versions saved before ``extend`` existed lack them
            try:
                detector.goods_ = _Goods(goods["raw"], len(AUGMENTATIONS[detector.augment]), goods.get("mirrored"),
                                         goods["defects"], goods["cells"], goods["owners"])
            except KeyError as error:
                raise ArtifactError(f"{folder} does not hold a usable anomaly model: {error}") from error
        return detector
