"""Few-shot inspection classifier: global + patch opinions of a frozen backbone, fused by stacking.

Follows scikit-learn's estimator contract: hyper-parameters in the constructor, ``fit`` returns
``self``, learned state ends with ``_``. Fitting works on *activations* (what the frozen backbone
computes once per image), so cross-validation never re-runs the network:

1. fold assignment (stratified, ``cv_folds``);
2. global opinion: logistic regression on standardised multi-scale pooled features, out-of-fold
   logits from one fit per fold;
3. local opinion: the distance of each patch to the nearest good training patch at the same or a
   neighbouring position, computed once per (patch, good image) pair and divided by the goods'
   typical distance at that position; leaving a fold out is then a minimum (and a scale) over the
   remaining good images, so out-of-fold patch scores cost no refit (naive leave-one-out would
   rebuild the memory per image);
4. fusion: a logistic regression on the out-of-fold [global logits, local statistics] (stacking);
   its own out-of-fold probabilities give the validation report and the calibrated threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from models.artifacts import ArtifactError, load_artifact, save_artifact
from models.backbones.registry import get_backbone
from models.classifier.calibration import calibrate_threshold, review_band, validation_report
from models.classifier.torch_model import (FewShotHead, leave_one_out_scale, local_stats, patch_features,
                                           pooled_maps, positional_distances, to_memory)
from models.preprocess import to_batch
from models.profiles import get_profile

Progress = Callable[[str, float], None]
MIN_GOODS = 3  # each cross-validation fold must leave two goods to estimate the position scale
METHOD = "few-shot-positional"  # artifact format; other methods (older versions) ask for a retrain


class NotFittedError(RuntimeError):
    """The estimator was used before ``fit`` or ``load``."""


@dataclass(frozen=True)
class Activations:
    """What the frozen backbone gives per image: pooled ``(N, Dp)`` and patch maps ``(N, D, h, w)``."""

    pooled: torch.Tensor
    patches: torch.Tensor

    def __len__(self) -> int:
        return self.pooled.shape[0]

    def take(self, index: np.ndarray | list[int]) -> Activations:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return Activations(self.pooled[index], self.patches[index])


def extract_activations(profile_name: str, images: list[np.ndarray], batch_size: int = 16,
                        progress: Callable[[int, int], None] | None = None) -> Activations:
    """Backbone activations of RGB uint8 images ``(H, W, 3)`` for the classifier of ``profile_name``."""
    profile = get_profile(profile_name)
    backbone = get_backbone(profile.backbone)
    pooled, patches = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            stages = backbone.forward_stages(to_batch(images[start : start + batch_size], profile.input_size))
            pooled.append(pooled_maps(stages).mean(dim=(2, 3)))
            patches.append(patch_features(stages))
            if progress is not None:
                progress(min(start + batch_size, len(images)), len(images))
    return Activations(torch.cat(pooled), torch.cat(patches))


def _as_multiclass(regression: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(K, D)`` and biases ``(K,)``; a binary model becomes two opposite logits."""
    weight = regression.coef_.astype(np.float32)
    bias = regression.intercept_.astype(np.float32)
    if weight.shape[0] == 1:
        weight = np.concatenate([-weight / 2, weight / 2])
        bias = np.concatenate([-bias / 2, bias / 2])
    return weight, bias


def _logits(regression: LogisticRegression, x: np.ndarray) -> np.ndarray:
    weight, bias = _as_multiclass(regression)
    return x @ weight.T + bias


class FewShotClassifier:
    """Classifies RGB images into ``good`` and defect classes from a few examples of each.

    Args:
        profile: network profile name (``fast``, ``balanced``, ``accurate``).
        good_class: the pass class; its images fill the patch memory.
        C: inverse L2 strength of the global head's logistic regression.
        fusion_C: inverse L2 strength of the fusion (stacking) regression.
        top_fraction: share of the largest patch distances averaged into the second local statistic.
        radius: how many grid cells (16 px at the profile's input size) a patch may be away from
            the good patch it is compared with (the parts are assumed aligned by the crop).
        max_goods: good images kept in the patch memory at most (a seeded random subset beyond).
        cv_folds: folds of the cross-validation (fewer when a class has fewer images).
        seed: random seed of the folds and of the memory's subset of goods.
    """

    kind = "classifier"

    def __init__(self, *, profile: str = "fast", good_class: str = "good", C: float = 0.1,
                 fusion_C: float = 1.0, top_fraction: float = 0.05, radius: int = 1, max_goods: int = 100,
                 cv_folds: int = 5, seed: int = 0) -> None:
        self.profile = profile
        self.good_class = good_class
        self.C = C
        self.fusion_C = fusion_C
        self.top_fraction = top_fraction
        self.radius = radius
        self.max_goods = max_goods
        self.cv_folds = cv_folds
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"profile": self.profile, "good_class": self.good_class, "C": self.C,
                "fusion_C": self.fusion_C, "top_fraction": self.top_fraction, "radius": self.radius,
                "max_goods": self.max_goods, "cv_folds": self.cv_folds, "seed": self.seed}

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, images: list[np.ndarray], labels: list[str], progress: Progress | None = None) -> FewShotClassifier:
        """Learn from RGB uint8 images ``(H, W, 3)`` and their class names."""
        report = progress or (lambda stage, fraction: None)
        get_profile(self.profile)  # an unknown profile fails before any work
        self._check_labels(labels)
        report("features", 0.0)
        activations = extract_activations(self.profile, images,
                                          progress=lambda done, total: report("features", done / total))
        return self.fit_activations(activations, labels, progress)

    def _check_labels(self, labels: list[str]) -> list[str]:
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ValueError("a classifier needs images of at least two classes")
        if labels.count(self.good_class) < MIN_GOODS:
            raise ValueError(f"the training set needs at least {MIN_GOODS} {self.good_class!r} images")
        return classes

    def fit_activations(self, activations: Activations, labels: list[str],
                        progress: Progress | None = None) -> FewShotClassifier:
        """Learn from precomputed ``extract_activations`` output (same profile) and class names."""
        report = progress or (lambda stage, fraction: None)
        classes = self._check_labels(labels)
        good = classes.index(self.good_class)
        y = np.array([classes.index(label) for label in labels])
        folds = min(self.cv_folds, int(np.bincount(y, minlength=len(classes)).min()))
        fold_of = np.zeros(len(y), dtype=int)
        splitter = StratifiedKFold(n_splits=max(folds, 2), shuffle=True, random_state=self.seed)
        for f, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
            fold_of[test] = f
        pooled = activations.pooled.numpy().astype(np.float64)
        n_folds = fold_of.max() + 1

        report("validation", 0.0)
        global_oof = np.zeros((len(y), len(classes)))
        for f in range(n_folds):
            train, test = fold_of != f, fold_of == f
            regression, mean, std = self._fit_global(pooled[train], y[train])
            global_oof[test] = _logits(regression, (pooled[test] - mean) / std)
            report("validation", 0.5 * (f + 1) / n_folds)

        goods = self._memory_goods(np.flatnonzero(y == good))
        memory = to_memory(activations.patches[goods])  # (hw, G, D)
        distances = positional_distances(activations.patches, memory, self.radius)
        good_distances = distances[torch.as_tensor(goods)]  # (G, G, h, w)
        local_oof = torch.zeros(len(y), 2)
        for f in range(n_folds):
            rows = np.flatnonzero(fold_of == f)
            keep = torch.as_tensor(fold_of[goods] != f)
            scale = leave_one_out_scale(good_distances[keep][:, keep])
            nearest = distances[rows][:, keep].min(dim=1).values / scale
            local_oof[rows] = local_stats(nearest.flatten(1), self.top_fraction)
        local_oof = local_oof.numpy().astype(np.float64)
        local_mean, local_std = local_oof.mean(axis=0), local_oof.std(axis=0) + 1e-6
        stacked = np.concatenate([global_oof, (local_oof - local_mean) / local_std], axis=1)
        report("validation", 0.7)

        fused_oof = np.zeros((len(y), len(classes)))
        for f in range(n_folds):
            train, test = fold_of != f, fold_of == f
            fused_oof[test] = self._fit_fusion(stacked[train], y[train]).predict_proba(stacked[test])
        scores = 1.0 - fused_oof[:, good]
        is_defect = y != good
        threshold = calibrate_threshold(scores, is_defect)
        band = review_band(scores, is_defect, threshold)
        self.validation_ = validation_report(fused_oof, y, classes, good, threshold, band, int(n_folds))
        self.oof_scores_ = scores
        report("validation", 1.0)

        report("fit", 0.0)
        regression, mean, std = self._fit_global(pooled, y)
        fusion = self._fit_fusion(stacked, y)
        head = FewShotHead(pooled.shape[1], memory.shape[2], memory.shape[1], tuple(activations.patches.shape[-2:]),
                           len(classes), good, self.top_fraction, self.radius)
        with torch.no_grad():
            head.pooled_mean.copy_(torch.from_numpy(mean))
            head.pooled_std.copy_(torch.from_numpy(std))
            head.memory.copy_(memory)
            head.position_scale.copy_(leave_one_out_scale(good_distances))
            head.local_mean.copy_(torch.from_numpy(local_mean))
            head.local_std.copy_(torch.from_numpy(local_std))
            for layer, fitted in ((head.global_head, regression), (head.fusion, fusion)):
                weight, bias = _as_multiclass(fitted)
                layer.weight.copy_(torch.from_numpy(weight))
                layer.bias.copy_(torch.from_numpy(bias))
        self.head_ = head.eval()
        self.classes_ = classes
        self.threshold_ = threshold
        self.review_band_ = band
        report("fit", 1.0)
        return self

    def _memory_goods(self, goods: np.ndarray) -> np.ndarray:
        """Indices of the good images kept in the patch memory (all, or ``max_goods`` of them)."""
        if len(goods) <= self.max_goods:
            return goods
        return np.sort(np.random.default_rng(self.seed).choice(goods, self.max_goods, replace=False))

    def _fit_global(self, pooled: np.ndarray, y: np.ndarray) -> tuple[LogisticRegression, np.ndarray, np.ndarray]:
        mean, std = pooled.mean(axis=0), pooled.std(axis=0) + 1e-6
        regression = LogisticRegression(C=self.C, max_iter=3000, class_weight="balanced")
        return regression.fit((pooled - mean) / std, y), mean.astype(np.float32), std.astype(np.float32)

    def _fit_fusion(self, stacked: np.ndarray, y: np.ndarray) -> LogisticRegression:
        return LogisticRegression(C=self.fusion_C, max_iter=3000, class_weight="balanced").fit(stacked, y)

    # --- predicting ----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError("this classifier is not trained yet: call fit() or load() first")

    def predict_proba_and_heatmap(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities ``(N, K)`` in ``classes_`` order and defect heatmaps ``(N, h, w)``
        float32 in [0, 1] at the patch grid (callers upsample), from one forward pass."""
        self._check_fitted()
        profile = get_profile(self.profile)
        with torch.inference_mode():
            stages = get_backbone(profile.backbone).forward_stages(to_batch(images, profile.input_size))
            logits, heatmap = self.head_(stages)
            return torch.softmax(logits, dim=1).numpy(), heatmap.numpy().astype(np.float32)

    def predict_proba(self, images: list[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(N, K)`` in the order of ``classes_``."""
        return self.predict_proba_and_heatmap(images)[0]

    def predict_proba_activations(self, activations: Activations) -> np.ndarray:
        """Class probabilities ``(N, K)`` from precomputed activations (no heatmap)."""
        self._check_fitted()
        with torch.inference_mode():
            distances = self.head_.patch_distances(activations.patches).flatten(1)
            logits = self.head_.fuse(self.head_.global_logits(activations.pooled),
                                     local_stats(distances, self.top_fraction))
            return torch.softmax(logits, dim=1).numpy()

    def predict(self, images: list[np.ndarray]) -> list[str]:
        return [self.classes_[i] for i in self.predict_proba(images).argmax(axis=1)]

    # --- artifacts -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        self._check_fitted()
        meta = {"kind": self.kind, "method": METHOD, "params": self.get_params(),
                "classes": self.classes_, "threshold": self.threshold_, "review_band": self.review_band_,
                "validation": self.validation_}
        save_artifact(folder, self.head_.state_dict(), meta)

    @classmethod
    def load(cls, folder: Path) -> FewShotClassifier:
        tensors, meta = load_artifact(folder)
        try:
            if meta.get("method") != METHOD:
                raise KeyError("method")
            model = cls(**meta["params"])
            classes = list(meta["classes"])
            memory, grid = tensors["memory"], tuple(tensors["position_scale"].shape)
            head = FewShotHead(tensors["pooled_mean"].shape[0], memory.shape[2], memory.shape[1],
                               grid, len(classes), classes.index(model.good_class),
                               model.top_fraction, model.radius)
            head.load_state_dict(tensors, strict=True)
            model.threshold_ = float(meta["threshold"])
            model.review_band_ = float(meta["review_band"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:  # readable, but not this model
            raise ArtifactError(f"{folder} does not hold a usable classifier: {error}") from error
        model.head_ = head.eval()
        model.classes_ = classes
        model.validation_ = meta.get("validation", {})
        return model


def load_classifier(folder: Path) -> FewShotClassifier:
    """The classifier stored in ``folder`` (ArtifactError when it is not a usable one)."""
    return FewShotClassifier.load(folder)
