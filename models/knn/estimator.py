"""kNN anomaly score on globally pooled backbone features, trained on good images only.

An image's raw score is its mean distance to the ``k`` nearest good training images in the pooled
1280-channel head features of the frozen backbone (the baseline of bench/anomaly.py). Threshold
and normalisation as the anomaly model's (``models.anomaly.calibration``): each training good is
scored against the other goods (leave-one-out), the conformal rule sets the threshold on those
out-of-fold scores, and the normalised score is 0.5 there. No map: the pooled features have no
position. Scikit-learn's estimator contract (``models.base``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.anomaly.calibration import FALSE_ALARM, Calibration, calibrate, good_only_report
from models.artifacts import ArtifactError, load_method_artifact, save_method_artifact
from models.backbones.registry import get_backbone, pooled_features
from models.base import Forward, Judgement, NotFittedError, Progress, TrainingSetError, mirrored
from models.device import get_device
from models.knn.torch_model import KnnGraph, KnnModel, mean_nearest
from models.preprocess import standardise_intensity
from models.profiles import DEFAULT_PROFILE, get_profile

MIN_GOOD_IMAGES = 5  # the smallest training set the product accepts (check_training_set)
REVIEW_BAND = 0.1  # normalised scores within this distance of 0.5 go to a person


class KnnDetector:
    """Flags images whose pooled features are far from every good training image's.

    Args:
        profile: backbone profile (``fast``, ``balanced``, ``accurate``).
        good_class: the class whose images ``fit`` learns from when given labels.
        k: how many nearest goods the distance is averaged over.
        standardise: scale each image's intensities to a common mean and contrast before the backbone.
        false_alarm: the calibration rule's alpha (see models.anomaly.calibration).
        seed: kept for the common contract (fitting is deterministic).
    """

    method = "knn"
    format_version = 1  # memory (G, D) of pooled features
    learns_from = "good"

    def __init__(self, *, profile: str = DEFAULT_PROFILE, good_class: str = "good", k: int = 1,
                 standardise: bool = True, false_alarm: float = FALSE_ALARM, seed: int = 0) -> None:
        self.profile = profile
        self.good_class = good_class
        self.k = k
        self.standardise = standardise
        self.false_alarm = false_alarm
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"profile": self.profile, "good_class": self.good_class, "k": self.k,
                "standardise": self.standardise, "false_alarm": self.false_alarm, "seed": self.seed}

    def features(self, images: list[np.ndarray], progress: Progress | None = None) -> torch.Tensor:
        """Pooled head features ``(N, 1280)`` (CPU) of RGB uint8 images ``(H, W, 3)``."""
        if self.standardise:
            images = [standardise_intensity(image) for image in images]
        report = None if progress is None else (lambda done, total: progress("features", done / total))
        return pooled_features(get_profile(self.profile), images, progress=report)

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, images: list[np.ndarray], labels: list[str] | None = None,
            progress: Progress | None = None) -> KnnDetector:
        """Learn from the good RGB uint8 images ``(H, W, 3)``: all of ``images``, or with ``labels`` those
        labelled ``good_class`` (the others are ignored, as the training report says)."""
        goods = images if labels is None else [i for i, label in zip(images, labels, strict=True)
                                               if label == self.good_class]
        if len(goods) < 3:
            raise TrainingSetError("a kNN model needs at least three good images")
        get_profile(self.profile)  # an unknown profile fails before any work
        self.fit_features(self.features(goods, progress))
        self.ignored_ = len(images) - len(goods)
        return self

    def fit_features(self, goods: torch.Tensor) -> KnnDetector:
        """Learn from the pooled features ``(G, D)`` of good images (``features``)."""
        if self.k < 1:
            raise ValueError(f"k must be at least 1, not {self.k}")
        goods = goods.float().cpu()
        distances = torch.cdist(goods, goods).fill_diagonal_(float("inf"))  # leave-one-out
        out_of_fold = mean_nearest(distances, min(self.k, len(goods) - 1)).numpy().astype(np.float64)
        self.calibration_ = calibrate(out_of_fold, self.false_alarm)
        self.reference_scores_ = [float(s) for s in self.calibration_.normalise(out_of_fold)]
        model = KnnModel(goods.shape[0], goods.shape[1], self.k)
        model.memory.copy_(goods)
        self.model_ = model.eval().to(get_device())
        self.n_images_, self.ignored_ = len(goods), 0
        self.threshold_, self.review_band_ = 0.5, REVIEW_BAND
        return self

    # --- judging -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this kNN model is not trained yet: call fit() or load() first")

    def score_features(self, features: torch.Tensor) -> np.ndarray:
        """Raw scores ``(N,)`` (mean distance to the ``k`` nearest goods) of pooled features ``(N, D)``."""
        self._check_fitted()
        with torch.inference_mode():
            return self.model_(features.float().to(self.model_.memory.device)).cpu().numpy().astype(np.float64)

    def raw_scores(self, images: list[np.ndarray]) -> tuple[np.ndarray]:
        """Raw scores ``(N,)`` of RGB uint8 images: the network part of ``judge`` (``judge_outputs``)."""
        return (self.score_features(self.features(images)),)

    def judge(self, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        """One Judgement per RGB uint8 image ``(H, W, 3)``: the normalised score (0.5 at the calibrated
        threshold) clipped to [0, 1], no map. With ``tta`` the mean of the image's and its mirror's."""
        return self.judge_from(self.raw_scores, images, tta=tta)

    # --- export (models/onnx_export.py) ----------------------------------------------------------
    export_outputs = ("score", "raw_score")  # the exported graph's outputs, in order (no map)
    judge_outputs = ("raw_score",)  # what judge_from's ``forward`` returns

    def judge_from(self, forward: Forward, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        """``judge`` with ``forward(images) -> (raw scores (N,),)`` computing the network's part
        (``raw_scores``, or the exported graph in another runtime)."""
        self._check_fitted()
        if not images:
            return []
        scores = self.calibration_.normalise(forward(images)[0].astype(np.float64))
        if tta:
            scores = (scores + self.calibration_.normalise(forward(mirrored(images))[0].astype(np.float64))) / 2
        return [Judgement(float(np.clip(score, 0.0, 1.0))) for score in scores]

    def export_module(self) -> torch.nn.Module:
        """The judging network as one module: an RGB uint8 crop ``(1, H, W, 3)`` in, ``export_outputs``
        out (normalised score ``(1,)``, raw score ``(1,)``), preprocessing included."""
        self._check_fitted()
        profile = get_profile(self.profile)
        return KnnGraph(get_backbone(profile.backbone), self.model_, profile.input_size, self.standardise,
                        self.calibration_.threshold, self.calibration_.scale)

    # --- the training report -------------------------------------------------------------------
    @classmethod
    def check_training_set(cls, counts: dict[str, int], good_class: str) -> None:
        """Refuse (TrainingSetError) a training set ``{class: images}`` with too few good images."""
        n_good = counts.get(good_class, 0)
        if n_good < MIN_GOOD_IMAGES:
            raise TrainingSetError(f"a kNN model needs at least {MIN_GOOD_IMAGES} good images "
                                   f"({MIN_GOOD_IMAGES - n_good} more)")

    def training_report(self, sample_ids: list[Any] | None = None) -> dict[str, Any]:
        """After ``fit``: the validation (goods used, images ignored, goods advised, raw calibration), the
        normalised out-of-fold scores of the goods and notices for the user. ``sample_ids`` is accepted
        for the common contract (no per-image entries)."""
        if not hasattr(self, "ignored_"):
            raise NotFittedError("the training report exists only after fit()")
        return good_only_report("kNN model", self.good_class, self.n_images_, self.ignored_, self.calibration_,
                                self.reference_scores_)

    # --- artifacts -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        self._check_fitted()
        save_method_artifact(folder, self.model_.state_dict(), self.method, self.format_version, self.get_params(),
                             calibration={"threshold": self.calibration_.threshold, "scale": self.calibration_.scale},
                             reference_scores=self.reference_scores_, n_images=self.n_images_)

    @classmethod
    def load(cls, folder: Path) -> KnnDetector:
        tensors, meta = load_method_artifact(folder, cls.method, cls.format_version, "kNN model")
        try:
            detector = cls(**meta["params"])
            model = KnnModel(*tensors["memory"].shape, k=detector.k)
            model.load_state_dict(tensors, strict=True)
            calibration = Calibration(float(meta["calibration"]["threshold"]), float(meta["calibration"]["scale"]))
            references = [float(s) for s in meta["reference_scores"]]
            n_images = int(meta["n_images"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ArtifactError(f"{folder} does not hold a usable kNN model: {error}") from error
        detector.model_ = model.eval().to(get_device())
        detector.calibration_ = calibration
        detector.reference_scores_ = references
        detector.n_images_ = n_images
        detector.threshold_, detector.review_band_ = 0.5, REVIEW_BAND
        return detector
