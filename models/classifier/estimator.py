"""Frozen-feature classifier: pooled EfficientNet-Lite features + multinomial logistic regression.

Follows scikit-learn's estimator contract: hyper-parameters in the constructor, ``fit`` returns
``self``, learned state ends with ``_``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, recall_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from models.artifacts import ArtifactError, load_artifact, save_artifact
from models.backbones.registry import get_backbone, pooled_features
from models.classifier.torch_model import LinearHead
from models.preprocess import to_batch
from models.profiles import get_profile

Progress = Callable[[str, float], None]
GOOD_CLASS = "good"  # the studio's pass class; the defect heatmap shows evidence against it


class NotFittedError(RuntimeError):
    """The estimator was used before ``fit`` or ``load``."""


class FrozenFeatureClassifier:
    """Classifies RGB images by a linear head on frozen ImageNet features.

    Args:
        profile: network profile name (``fast``, ``balanced``, ``accurate``).
        C: inverse L2 regularisation strength of the logistic regression.
        cv_folds: folds of the cross-validation that estimates accuracy on unseen images.
        seed: random seed of the cross-validation split.
    """

    kind = "classifier"

    def __init__(self, *, profile: str = "fast", C: float = 0.5, cv_folds: int = 5, seed: int = 0) -> None:
        self.profile = profile
        self.C = C
        self.cv_folds = cv_folds
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"profile": self.profile, "C": self.C, "cv_folds": self.cv_folds, "seed": self.seed}

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, images: list[np.ndarray], labels: list[str], progress: Progress | None = None) -> FrozenFeatureClassifier:
        """Learn from RGB uint8 images ``(H, W, 3)`` and their class names."""
        report = progress or (lambda stage, fraction: None)
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ValueError("a classifier needs images of at least two classes")
        profile = get_profile(self.profile)
        features = pooled_features(
            profile, images, progress=lambda done, total: report("features", done / total)
        ).numpy()
        y = np.array([classes.index(label) for label in labels])
        report("validation", 0.0)
        self.validation_ = self._cross_validate(features, y, classes)
        report("fit", 0.0)
        regression = self._new_regression().fit(self._standardise_fit(features), y)
        head = LinearHead(features.shape[1], len(classes))
        with torch.no_grad():
            head.feature_mean.copy_(torch.from_numpy(self.mean_))
            head.feature_std.copy_(torch.from_numpy(self.std_))
            weight, bias = self._as_multiclass(regression)
            head.linear.weight.copy_(torch.from_numpy(weight))
            head.linear.bias.copy_(torch.from_numpy(bias))
        self.head_ = head.eval()
        self.classes_ = classes
        report("fit", 1.0)
        return self

    def _new_regression(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=2000, class_weight="balanced")

    def _standardise_fit(self, features: np.ndarray) -> np.ndarray:
        self.mean_ = features.mean(axis=0).astype(np.float32)
        self.std_ = (features.std(axis=0) + 1e-6).astype(np.float32)
        return (features - self.mean_) / self.std_

    @staticmethod
    def _as_multiclass(regression: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
        """Weights ``(K, D)`` and biases ``(K,)``; a binary model becomes two opposite logits."""
        weight = regression.coef_.astype(np.float32)
        bias = regression.intercept_.astype(np.float32)
        if weight.shape[0] == 1:
            weight = np.concatenate([-weight / 2, weight / 2])
            bias = np.concatenate([-bias / 2, bias / 2])
        return weight, bias

    def _cross_validate(self, features: np.ndarray, y: np.ndarray, classes: list[str]) -> dict[str, Any]:
        """Cross-validated predictions of the same recipe: accuracy the user can expect."""
        folds = min(self.cv_folds, int(np.bincount(y).min()))
        if folds < 2:
            return {}
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.seed)
        standardised = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
        predicted = cross_val_predict(self._new_regression(), standardised, y, cv=splitter)
        recalls = recall_score(y, predicted, average=None, labels=range(len(classes)))
        return {
            "cv_folds": folds,
            "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
            "recall": {name: float(r) for name, r in zip(classes, recalls, strict=True)},
            "confusion": confusion_matrix(y, predicted, labels=range(len(classes))).tolist(),
            "misclassified": [int(i) for i in np.flatnonzero(predicted != y)],
        }

    # --- predicting ----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError("this classifier is not trained yet: call fit() or load() first")

    def predict_proba(self, images: list[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(N, K)`` in the order of ``classes_``."""
        self._check_fitted()
        features = pooled_features(get_profile(self.profile), images)
        with torch.inference_mode():
            return torch.softmax(self.head_(features), dim=1).numpy()

    def predict_proba_and_heatmap(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities ``(N, K)`` (order of ``classes_``) and a defect heatmap ``(N, h, w)``
        float32 in [0, 1] at feature-map resolution, from one forward pass.

        The head is linear on globally averaged features, so Grad-CAM equals CAM (Zhou et al. 2016,
        "Learning Deep Features for Discriminative Localization"): the image's logit difference
        between the most likely defect class and ``good`` is the mean over locations of a local
        logit ``sum_d v_d (A_dhw - mu_d) / s_d + b``; the heatmap is its sigmoid, so 0.5 is the
        local decision boundary and a clean part stays dark. No backward pass is needed.
        """
        self._check_fitted()
        profile = get_profile(self.profile)
        if not images:
            return np.empty((0, len(self.classes_)), np.float32), np.empty((0, 0, 0), np.float32)
        with torch.inference_mode():
            maps = get_backbone(profile.backbone).forward_stages(to_batch(images, profile.input_size))[-1]
            probabilities = torch.softmax(self.head_(maps.mean(dim=(2, 3))), dim=1)
            local_logits = self._defect_local_logits(maps, probabilities)
            return probabilities.numpy(), torch.sigmoid(local_logits).numpy().astype(np.float32)

    def _defect_local_logits(self, maps: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        """``(N, h, w)`` local logit of "most likely defect class" against the good class.

        Without a ``good`` class, the most likely class against the mean of the others.
        """
        weight = self.head_.linear.weight / self.head_.feature_std  # (K, D), per raw feature
        bias = self.head_.linear.bias - weight @ self.head_.feature_mean  # (K,)
        if GOOD_CLASS in self.classes_:
            good = self.classes_.index(GOOD_CLASS)
            masked = probabilities.clone()
            masked[:, good] = -1.0
            target = masked.argmax(dim=1)
            reference_w, reference_b = weight[good].expand(len(target), -1), bias[good].expand(len(target))
        else:
            target = probabilities.argmax(dim=1)
            others = 1.0 - torch.nn.functional.one_hot(target, len(self.classes_)).float()
            others = others / others.sum(dim=1, keepdim=True)
            reference_w, reference_b = others @ weight, others @ bias
        direction = weight[target] - reference_w  # (N, D)
        offset = bias[target] - reference_b  # (N,)
        return torch.einsum("nd,ndhw->nhw", direction, maps) + offset[:, None, None]

    def predict(self, images: list[np.ndarray]) -> list[str]:
        return [self.classes_[i] for i in self.predict_proba(images).argmax(axis=1)]

    # --- artifacts -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        self._check_fitted()
        meta = {"kind": self.kind, "params": self.get_params(), "classes": self.classes_,
                "validation": self.validation_}
        save_artifact(folder, self.head_.state_dict(), meta)

    @classmethod
    def load(cls, folder: Path) -> FrozenFeatureClassifier:
        tensors, meta = load_artifact(folder)
        try:
            model = cls(**meta["params"])
            head = LinearHead(tensors["feature_mean"].shape[0], len(meta["classes"]))
            head.load_state_dict(tensors, strict=True)
        except (KeyError, TypeError, RuntimeError) as error:  # readable files, but not this model
            raise ArtifactError(f"{folder} does not hold a usable classifier: {error}") from error
        model.head_ = head.eval()
        model.classes_ = list(meta["classes"])
        model.validation_ = meta.get("validation", {})
        model.mean_ = tensors["feature_mean"].numpy()
        model.std_ = tensors["feature_std"].numpy()
        return model
