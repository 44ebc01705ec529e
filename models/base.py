"""The contract every inspection method in ``models/`` follows, so that ``core/`` needs to know none.

scikit-learn's estimator contract: the constructor only stores keyword-only hyper-parameters, ``fit``
validates, learns and returns ``self``, learned state ends with ``_``, using a model before ``fit`` or
``load`` raises :class:`NotFittedError`. A method is one folder in ``models/`` and one entry in
``models/registry.py``; ``core/`` builds, fits, judges with, saves and loads it only through the
registry and this protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

Progress = Callable[[str, float], None]  # progress(stage, fraction in [0, 1])
# forward(images) -> the arrays a method's ``judge_from`` needs, batched along axis 0 (``judge_outputs``)
Forward = Callable[[list[np.ndarray]], tuple[np.ndarray, ...]]


class NotFittedError(RuntimeError):
    """A model was used before ``fit`` or ``load``."""


class TrainingSetError(ValueError):
    """A training set the method cannot learn from; the message says what to add."""


@dataclass(frozen=True)
class Judgement:
    """One model's view of one image.

    ``score``: defect score in [0, 1], higher = more defective (``threshold_`` decides). ``probabilities``:
    class name -> probability (empty for good-only methods). ``label``: the defect class the method
    names (None for good-only methods). ``map``: ``(h, w)`` float32 in [0, 1] at any resolution (the
    caller resizes), or None. ``raw_map``: the unnormalised map where the method has one. ``regions``:
    areas above the calibrated threshold (``models.anomaly.regions.Region``), empty otherwise.
    """

    score: float
    probabilities: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    map: np.ndarray | None = field(default=None, repr=False)
    raw_map: np.ndarray | None = field(default=None, repr=False)
    regions: list = field(default_factory=list)


def mirrored(images: list[np.ndarray]) -> list[np.ndarray]:
    """The left-right mirror images of RGB images ``(H, W, 3)`` (test-time augmentation)."""
    return [np.ascontiguousarray(image[:, ::-1]) for image in images]


class InspectionMethod(Protocol):
    """A trainable inspection model. Constructor: ``cls(*, profile, good_class, seed, **hyper_parameters)``.

    ``fit`` takes RGB uint8 images ``(H, W, 3)`` and their class names (good-only methods ignore the
    images not labelled ``good_class`` and say so in ``training_report()["notices"]``).
    """

    method: ClassVar[str]  # registry name, stored in model.json and with each model version
    format_version: ClassVar[int]  # artifact layout; another one asks for a retrain
    learns_from: ClassVar[str]  # "labelled" (good + defect classes) or "good" (good images only)

    profile: str
    good_class: str
    seed: int
    threshold_: float  # decision rule on Judgement.score: defective above it
    review_band_: float  # scores within this distance of threshold_ go to a person
    reference_scores_: list[float]  # out-of-fold scores of the training goods (drift reference)

    def get_params(self) -> dict[str, Any]: ...

    def fit(self, images: list[np.ndarray], labels: list[str],
            progress: Progress | None = None) -> InspectionMethod: ...

    def judge(self, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]: ...

    def training_report(self, sample_ids: list[Any] | None = None) -> dict[str, Any]: ...

    @classmethod
    def check_training_set(cls, counts: dict[str, int], good_class: str) -> None: ...

    def save(self, folder: Path) -> None: ...

    @classmethod
    def load(cls, folder: Path) -> InspectionMethod: ...
