"""Few-shot inspection classifier: a discriminant patch opinion of a frozen backbone decides pass /
fail, a global head names the defect class.

Follows scikit-learn's estimator contract: hyper-parameters in the constructor, ``fit`` returns
``self``, learned state ends with ``_``. Fitting works on *activations* (what the frozen backbone
computes once per image), so cross-validation never re-runs the network:

1. fold assignment (stratified, ``cv_folds``);
2. local opinion, out of fold: patches projected onto the discriminant directions learned from the
   fold's training part (good and defective images, ``projection.py``), then the distance of each
   patch to the nearest good training patch at the same or a neighbouring position, divided by the
   goods' typical distance at that position (leave-one-out among the goods, all pairs from one
   batched distance computation per fold, so calibration costs no per-image refit);
3. decision: a logistic regression from the two local statistics to P(defect), its out-of-fold
   probabilities from one fit per fold;
4. with several defect classes, a logistic regression on standardised multi-scale pooled features
   of the defective images shares P(defect) among them (out of fold likewise);
5. the out-of-fold probabilities give the validation report and the calibrated threshold.
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

from models.artifacts import ArtifactError, load_method_artifact, save_method_artifact
from models.augment import LINE_VARIANTS, augmented_copies
from models.backbones.registry import get_backbone
from models.base import Forward, Judgement, NotFittedError, Progress, TrainingSetError, mirrored
from models.classifier.calibration import calibrate_threshold, review_band, validation_report
from models.classifier.torch_model import (
    ClassifierGraph,
    FewShotHead,
    classify,
    local_stats,
    patch_features,
    pooled_maps,
    position_scale,
)
from models.device import get_device
from models.positional_memory import nearest_good_distances, to_memory
from models.preprocess import standardise_intensity, to_batch
from models.profiles import DEFAULT_PROFILE, get_profile
from models.projection import discriminant_projection, project

MIN_GOODS = 3  # each cross-validation fold must leave two goods to estimate the position scale
MIN_IMAGES_PER_CLASS = 5  # the smallest training set the product accepts (check_training_set)


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


def network_input(images: list[np.ndarray], size: int, standardise: bool) -> torch.Tensor:
    """The backbone's input ``(B, 3, S, S)`` on ``get_device()`` from RGB uint8 images, each first scaled
    to a common mean intensity and contrast when ``standardise``."""
    return to_batch([standardise_intensity(image) for image in images] if standardise else images,
                    size).to(get_device())


def extract_activations(profile_name: str, images: list[np.ndarray], batch_size: int = 16,
                        progress: Callable[[int, int], None] | None = None,
                        standardise: bool = True) -> Activations:
    """Backbone activations (on the CPU) of RGB uint8 images ``(H, W, 3)`` for the classifier of
    ``profile_name`` (``standardise`` as the classifier's hyper-parameter of that name)."""
    profile = get_profile(profile_name)
    backbone = get_backbone(profile.backbone)
    pooled, patches = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = network_input(images[start : start + batch_size], profile.input_size, standardise)
            stages = backbone.forward_stages(batch)
            pooled.append(pooled_maps(stages).mean(dim=(2, 3)).cpu())
            patches.append(patch_features(stages).cpu())
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


# Fixed variants each training image is also learned from (``augment``).
AUGMENTATIONS: dict[str, tuple] = {"none": (), "line": LINE_VARIANTS}


class FewShotClassifier:
    """Classifies RGB images into ``good`` and defect classes from a few examples of each.

    Args:
        profile: network profile name (``fast``, ``balanced``, ``accurate``).
        good_class: the pass class; its images fill the patch memory.
        C: inverse L2 strength of the defect-class head's logistic regression.
        fusion_C: inverse L2 strength of the decision's logistic regression on the local statistics.
        top_fraction: share of the largest patch distances averaged into the second local statistic.
        standardise: scale each image's intensities to a common mean and contrast before the network.
        projection_dims: discriminant directions the patch features are projected onto.
        shrinkage: share of the identity in the goods' residual covariance of the projection.
        defect_patches: most deviating patches per defective image that describe the defects there.
        radius: how many grid cells (16 px at the profile's input size) a patch may be away from
            the good patch it is compared with (the parts are assumed aligned by the crop).
        max_goods: good images kept in the patch memory at most (a seeded random subset beyond).
        cv_folds: folds of the cross-validation (fewer when a class has fewer images).
        augment: ``line`` also learns from the fixed variants of every training image
            (``models.augment.LINE_VARIANTS``: brighter, shifted and turned, motion-blurred); ``none``.
        augment_copies: randomly changed copies of each training image learned from beside it
            (``models.augment.augmented``: light, position, motion blur, sensor noise). Variants and copies
            stay in their image's cross-validation fold, and only the images themselves calibrate.
        seed: random seed of the folds, of the memory's subset of goods and of the augmentation.
    """

    method = "classifier"
    format_version = 1  # FewShotHead's state dict (legacy model.json: "method": "few-shot-discriminant")
    learns_from = "labelled"

    def __init__(self, *, profile: str = DEFAULT_PROFILE, good_class: str = "good", C: float = 0.1,
                 fusion_C: float = 1.0, top_fraction: float = 0.05, standardise: bool = True,
                 projection_dims: int = 32, shrinkage: float = 0.1, defect_patches: int = 5, radius: int = 1,
                 max_goods: int = 100, cv_folds: int = 5, augment: str = "none", augment_copies: int = 0,
                 seed: int = 0) -> None:
        self.profile = profile
        self.good_class = good_class
        self.C = C
        self.fusion_C = fusion_C
        self.top_fraction = top_fraction
        self.standardise = standardise
        self.projection_dims = projection_dims
        self.shrinkage = shrinkage
        self.defect_patches = defect_patches
        self.radius = radius
        self.max_goods = max_goods
        self.cv_folds = cv_folds
        self.augment = augment
        self.augment_copies = augment_copies
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"profile": self.profile, "good_class": self.good_class, "C": self.C,
                "fusion_C": self.fusion_C, "top_fraction": self.top_fraction, "standardise": self.standardise,
                "projection_dims": self.projection_dims, "shrinkage": self.shrinkage,
                "defect_patches": self.defect_patches, "radius": self.radius,
                "max_goods": self.max_goods, "cv_folds": self.cv_folds, "augment": self.augment,
                "augment_copies": self.augment_copies,
                "seed": self.seed}

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, images: list[np.ndarray], labels: list[str], progress: Progress | None = None) -> FewShotClassifier:
        """Learn from RGB uint8 images ``(H, W, 3)`` and their class names (and, with ``augment``, the fixed
        line variants of each, and ``augment_copies`` random variants of each)."""
        report = progress or (lambda stage, fraction: None)
        get_profile(self.profile)  # an unknown profile fails before any work
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {self.augment!r}; choose one of {', '.join(AUGMENTATIONS)}")
        self._check_labels(labels)
        report("features", 0.0)
        variants = AUGMENTATIONS[self.augment]
        copies = [variant(image) for image in images for variant in variants]
        copies += augmented_copies(images, self.augment_copies, self.seed) if self.augment_copies else []
        every = np.arange(len(images))
        sources = np.concatenate([every, np.repeat(every, len(variants)), np.repeat(every, self.augment_copies)])
        activations = extract_activations(self.profile, images + copies,
                                          progress=lambda done, total: report("features", done / total),
                                          standardise=self.standardise)
        return self.fit_activations(activations, [labels[i] for i in sources], progress,
                                    sources=sources if copies else None)

    def _check_labels(self, labels: list[str]) -> list[str]:
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise TrainingSetError("a classifier needs images of at least two classes")
        if labels.count(self.good_class) < MIN_GOODS:
            raise TrainingSetError(f"the training set needs at least {MIN_GOODS} {self.good_class!r} images")
        return classes

    def fit_activations(self, activations: Activations, labels: list[str], progress: Progress | None = None,
                        sources: np.ndarray | None = None) -> FewShotClassifier:
        """Learn from precomputed ``extract_activations`` output (same profile) and class names;
        ``sources`` gives for each row the row of the image it is an augmented copy of (its own for
        the images themselves; None: no copies)."""
        report = progress or (lambda stage, fraction: None)
        classes = self._check_labels(labels)
        good = classes.index(self.good_class)
        y = np.array([classes.index(label) for label in labels])
        sources = np.arange(len(y)) if sources is None else np.asarray(sources)
        own = np.flatnonzero(sources == np.arange(len(y)))  # the images themselves: they calibrate
        folds = min(self.cv_folds, int(np.bincount(y[own], minlength=len(classes)).min()))
        fold_of = np.zeros(len(y), dtype=int)
        splitter = StratifiedKFold(n_splits=max(folds, 2), shuffle=True, random_state=self.seed)
        for f, (_, test) in enumerate(splitter.split(np.zeros(len(own)), y[own])):
            fold_of[own[test]] = f
        fold_of = fold_of[sources]  # a copy stays in its image's fold
        n_folds = fold_of.max() + 1
        patches, is_defect = activations.patches, y != good
        goods = self._memory_goods(np.flatnonzero(~is_defect))

        report("validation", 0.0)
        nearest = torch.zeros(len(y), *patches.shape[-2:])  # out-of-fold distance to the nearest good patch
        for f in range(n_folds):
            rows = np.flatnonzero(fold_of == f)
            kept = goods[fold_of[goods] != f]
            projection = self._projection(patches[fold_of != f], torch.as_tensor(~is_defect[fold_of != f]))
            nearest[rows] = self._distances(patches, kept, projection, rows)
            report("validation", 0.6 * (f + 1) / n_folds)
        scale = position_scale(nearest[goods])
        local_oof = local_stats((nearest / scale).flatten(1), self.top_fraction).numpy().astype(np.float64)
        local_mean, local_std = local_oof.mean(axis=0), local_oof.std(axis=0) + 1e-6
        stats = (local_oof - local_mean) / local_std

        pooled = activations.pooled.numpy().astype(np.float64)
        several = len(classes) > 2
        oof = np.zeros((len(y), len(classes)))
        for f in range(n_folds):
            train, test = fold_of != f, fold_of == f
            defect = self._fit_decision(stats[train], is_defect[train]).predict_proba(stats[test])[:, 1]
            share = np.ones((test.sum(), 1))
            if several:
                regression, mean, std = self._fit_defect_head(pooled[train & is_defect], y[train & is_defect])
                share = regression.predict_proba((pooled[test] - mean) / std)
            oof[np.ix_(test, [c for c in range(len(classes)) if c != good])] = defect[:, None] * share
            oof[test, good] = 1.0 - defect
        report("validation", 0.8)
        scores = 1.0 - oof[own, good]
        threshold = calibrate_threshold(scores, is_defect[own])
        band = review_band(scores, is_defect[own], threshold)
        self.validation_ = validation_report(oof[own], y[own], classes, good, threshold, band, int(n_folds))
        self.oof_scores_ = scores
        self.labels_ = [labels[i] for i in own]
        self.reference_scores_ = [float(s) for s in scores[~is_defect[own]]]
        report("validation", 1.0)

        report("fit", 0.0)
        projection = self._projection(patches, torch.as_tensor(~is_defect))
        decision = self._fit_decision(stats, is_defect)
        head = FewShotHead(pooled.shape[1], patches.shape[1], projection.shape[1], len(goods),
                           tuple(patches.shape[-2:]), len(classes), good, self.top_fraction, self.radius)
        with torch.no_grad():
            head.projection.copy_(projection)
            head.memory.copy_(to_memory(project(patches[goods], projection)))
            head.position_scale.copy_(scale)
            head.local_mean.copy_(torch.from_numpy(local_mean))
            head.local_std.copy_(torch.from_numpy(local_std))
            head.decision.weight.copy_(torch.from_numpy(decision.coef_))
            head.decision.bias.copy_(torch.from_numpy(decision.intercept_))
            head.defect_head.weight.zero_()
            head.defect_head.bias.zero_()
            if several:
                regression, mean, std = self._fit_defect_head(pooled[is_defect], y[is_defect])
                weight, bias = _as_multiclass(regression)
                head.pooled_mean.copy_(torch.from_numpy(mean))
                head.pooled_std.copy_(torch.from_numpy(std))
                head.defect_head.weight.copy_(torch.from_numpy(weight))
                head.defect_head.bias.copy_(torch.from_numpy(bias))
        self.head_ = head.eval().to(get_device())
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

    def _projection(self, patches: torch.Tensor, is_good: torch.Tensor) -> torch.Tensor:
        """The discriminant projection ``(D, d)`` learned from ``patches (N, D, h, w)`` of both classes."""
        dims = min(self.projection_dims, patches.shape[1])
        return discriminant_projection(patches, is_good, dims, self.shrinkage, self.defect_patches)

    def _distances(self, patches: torch.Tensor, goods: np.ndarray, projection: torch.Tensor,
                   rows: np.ndarray) -> torch.Tensor:
        """Projected distances of ``patches[rows]`` to the nearest patch of the memory of ``patches[goods]``
        ``(R, h, w)``."""
        memory = to_memory(project(patches[goods], projection))
        return nearest_good_distances(project(patches[rows], projection), memory, self.radius)

    def _fit_defect_head(self, pooled: np.ndarray, y: np.ndarray) -> tuple[LogisticRegression, np.ndarray, np.ndarray]:
        """Which defect class: logistic regression on standardised pooled features of defective images."""
        mean, std = pooled.mean(axis=0), pooled.std(axis=0) + 1e-6
        regression = LogisticRegression(C=self.C, max_iter=3000, class_weight="balanced")
        return regression.fit((pooled - mean) / std, y), mean.astype(np.float32), std.astype(np.float32)

    def _fit_decision(self, stats: np.ndarray, is_defect: np.ndarray) -> LogisticRegression:
        """P(defect) from standardised local statistics, both classes weighted equally."""
        return LogisticRegression(C=self.fusion_C, max_iter=3000, class_weight="balanced").fit(stats, is_defect)

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
            batch = network_input(images, profile.input_size, self.standardise)
            probabilities, heatmap = classify(get_backbone(profile.backbone), self.head_, batch)
            return probabilities.cpu().numpy(), heatmap.cpu().numpy().astype(np.float32)

    def predict_proba(self, images: list[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(N, K)`` in the order of ``classes_``."""
        return self.predict_proba_and_heatmap(images)[0]

    def predict_proba_activations(self, activations: Activations) -> np.ndarray:
        """Class probabilities ``(N, K)`` from precomputed activations (no heatmap)."""
        self._check_fitted()
        device = self.head_.memory.device
        with torch.inference_mode():
            distances = self.head_.patch_distances(activations.patches.to(device)).flatten(1)
            pooled = activations.pooled.to(device)
            return self.head_.probabilities(pooled, local_stats(distances, self.top_fraction)).cpu().numpy()

    def predict(self, images: list[np.ndarray]) -> list[str]:
        return [self.classes_[i] for i in self.predict_proba(images).argmax(axis=1)]

    def judge(self, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        """One Judgement per RGB uint8 image ``(H, W, 3)``: score = 1 - P(good), the probabilities, the
        likeliest defect class and the defect map at the patch grid ``(h, w)``. With ``tta`` each image is
        also judged mirrored left-right in the same batch; probabilities and the (mirrored back) maps
        are averaged."""
        return self.judge_from(self.predict_proba_and_heatmap, images, tta=tta)

    # --- export (models/onnx_export.py) ----------------------------------------------------------
    export_outputs = ("score", "map", "probabilities")  # the exported graph's outputs, in order
    judge_outputs = ("probabilities", "map")  # what judge_from's ``forward`` returns

    def judge_from(self, forward: Forward, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        """``judge`` with ``forward(images) -> (probabilities (N, K), maps (N, h, w))`` computing the
        network's part (this estimator's own, or its exported graph in another runtime)."""
        self._check_fitted()
        if not images:
            return []
        batch = images + mirrored(images) if tta else images
        probabilities, heatmaps = forward(batch)
        if tta:
            n = len(images)
            probabilities = (probabilities[:n] + probabilities[n:]) / 2
            heatmaps = (heatmaps[:n] + heatmaps[n:, :, ::-1]) / 2
        defects = [c for c in self.classes_ if c != self.good_class]
        result = []
        for row, heatmap in zip(probabilities, heatmaps, strict=True):
            scores = {name: float(p) for name, p in zip(self.classes_, row, strict=True)}
            score = min(1.0, max(0.0, 1.0 - scores.get(self.good_class, 0.0)))
            result.append(Judgement(score, scores, max(defects, key=scores.__getitem__), heatmap))
        return result

    def export_module(self) -> torch.nn.Module:
        """The judging network as one module: an RGB uint8 crop ``(1, H, W, 3)`` in, ``export_outputs``
        out (score ``(1,)``, map ``(1, h, w)``, probabilities ``(1, K)``), preprocessing included."""
        self._check_fitted()
        profile = get_profile(self.profile)
        return ClassifierGraph(get_backbone(profile.backbone), self.head_, profile.input_size, self.standardise,
                               self.classes_.index(self.good_class))

    # --- the training report -------------------------------------------------------------------
    @classmethod
    def check_training_set(cls, counts: dict[str, int], good_class: str) -> None:
        """Refuse (TrainingSetError) a training set ``{class: images}`` the classifier cannot learn from,
        saying what to add."""
        present = {name: n for name, n in counts.items() if n > 0}
        if len(present) < 2:
            raise TrainingSetError(
                "a classifier needs images of at least two classes (good and a defect); with good images "
                "only, train an anomaly model instead"
            )
        short = {name: MIN_IMAGES_PER_CLASS - n for name, n in present.items() if n < MIN_IMAGES_PER_CLASS}
        if short:
            details = ", ".join(f"{name}: {missing} more" for name, missing in sorted(short.items()))
            raise TrainingSetError(f"each class needs at least {MIN_IMAGES_PER_CLASS} images ({details})")
        if good_class not in present:
            raise TrainingSetError(f"the training set has no {good_class!r} images")

    def training_report(self, sample_ids: list[Any] | None = None) -> dict[str, Any]:
        """What a version stores after ``fit``: the validation (its misclassified training images as
        ``sample_ids`` entries, default their indices), the class counts, the calibrated decision, the
        out-of-fold defect scores of the good training images and notices for the user (none)."""
        if not hasattr(self, "labels_"):
            raise NotFittedError("the training report exists only after fit()")
        ids = list(range(len(self.labels_))) if sample_ids is None else list(sample_ids)
        validation = dict(self.validation_)
        validation["misclassified_samples"] = [
            {"sample_id": ids[i], "label": self.labels_[i], "score": round(float(self.oof_scores_[i]), 4)}
            for i in validation["misclassified"]]
        counts = {label: self.labels_.count(label) for label in sorted(set(self.labels_))}
        return {"validation": validation, "class_counts": counts,
                "calibration": {"threshold": self.threshold_, "review_band": self.review_band_},
                "reference_scores": list(self.reference_scores_), "n_samples": len(self.labels_), "notices": []}

    # --- artifacts -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        self._check_fitted()
        save_method_artifact(folder, self.head_.state_dict(), self.method, self.format_version, self.get_params(),
                             classes=self.classes_, threshold=self.threshold_, review_band=self.review_band_,
                             validation=self.validation_, reference_scores=self.reference_scores_)

    @classmethod
    def load(cls, folder: Path) -> FewShotClassifier:
        tensors, meta = load_method_artifact(folder, cls.method, cls.format_version, "classifier")
        try:
            model = cls(**meta["params"])
            classes = list(meta["classes"])
            memory, grid = tensors["memory"], tuple(tensors["position_scale"].shape)
            head = FewShotHead(tensors["pooled_mean"].shape[0], tensors["projection"].shape[0], memory.shape[2],
                               memory.shape[1], grid, len(classes), classes.index(model.good_class),
                               model.top_fraction, model.radius)
            head.load_state_dict(tensors, strict=True)
            model.threshold_ = float(meta["threshold"])
            model.review_band_ = float(meta["review_band"])
            model.reference_scores_ = [float(s) for s in meta.get("reference_scores", [])]
        except (KeyError, TypeError, ValueError, RuntimeError) as error:  # readable, but not this model
            raise ArtifactError(f"{folder} does not hold a usable classifier: {error}") from error
        model.head_ = head.eval().to(get_device())
        model.classes_ = classes
        model.validation_ = meta.get("validation", {})
        return model


def load_classifier(folder: Path) -> FewShotClassifier:
    """The classifier stored in ``folder`` (ArtifactError when it is not a usable one)."""
    return FewShotClassifier.load(folder)
