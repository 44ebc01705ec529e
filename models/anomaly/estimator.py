"""Anomaly detector trained on good images only (PatchCore-style), scikit-learn estimator contract.

Hyper-parameters in the keyword-only constructor, ``fit`` returns ``self``, learned state ends with
``_``. ``predict`` gives per image a normalised score (0.5 at the calibrated threshold), an anomaly
map at the image's resolution and the regions above the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.anomaly.anomaly_map import DEFAULT_SIGMA, anomaly_map
from models.anomaly.calibration import FALSE_ALARM, Calibration, calibrate
from models.anomaly.components import coreset_indices
from models.anomaly.regions import Region, find_regions
from models.anomaly.torch_model import PatchCoreModel
from models.artifacts import ArtifactError, load_artifact, save_artifact
from models.backbones.registry import get_backbone
from models.preprocess import to_batch
from models.profiles import get_profile

Progress = Callable[[str, float], None]
BATCH = 16


def _identity(image: np.ndarray) -> np.ndarray:
    return image


def _mirror(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def _flip(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::-1])


def _rotate_half(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::-1, ::-1])


# Augmentations of the goods that keep an aligned part's layout plausible (no rotation by 90 degrees).
AUGMENTATIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], ...]] = {
    "none": (_identity,),
    "flips": (_identity, _mirror, _flip, _rotate_half),
}


class NotFittedError(RuntimeError):
    """The detector was used before ``fit`` or ``load``."""


@dataclass(frozen=True)
class AnomalyResult:
    """One image's verdict material: scores, the map (normalised, image resolution) and regions."""

    score: float  # normalised: 0.5 at the threshold
    raw_score: float
    map: np.ndarray = field(repr=False)  # (H, W) float32 in (0, 1)
    regions: list[Region]


class PatchCoreDetector:
    """Learns what good parts look like from good images only; flags what looks different.

    Args:
        profile: backbone profile (``fast``, ``balanced``, ``accurate``).
        layers: backbone stages whose patch features are concatenated.
        input_size: square network input in pixels (None: the profile's).
        pool: local averaging neighbourhood of the patch features.
        augment: augmentation of the goods before building the memory bank (``none``, ``flips``).
        position_weight: weight of a patch's position in matching (parts are aligned); 0 off.
        bank_rows: largest memory bank, in patches (coreset subsampling beyond it).
        sigma: Gaussian blur of the anomaly map, in output pixels.
        false_alarm: the calibration rule's alpha (see models.anomaly.calibration).
        seed: seed of the coreset sampling.
    """

    kind = "anomaly"

    def __init__(self, *, profile: str = "fast", layers: tuple[int, ...] = (2, 3), input_size: int | None = None,
                 pool: int = 3, augment: str = "flips", position_weight: float = 0.0, bank_rows: int = 4096,
                 sigma: float = DEFAULT_SIGMA, false_alarm: float = FALSE_ALARM, seed: int = 0) -> None:
        self.profile = profile
        self.layers = layers
        self.input_size = input_size
        self.pool = pool
        self.augment = augment
        self.position_weight = position_weight
        self.bank_rows = bank_rows
        self.sigma = sigma
        self.false_alarm = false_alarm
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"profile": self.profile, "layers": list(self.layers), "input_size": self.input_size,
                "pool": self.pool, "augment": self.augment, "position_weight": self.position_weight,
                "bank_rows": self.bank_rows, "sigma": self.sigma, "false_alarm": self.false_alarm, "seed": self.seed}

    # --- features ------------------------------------------------------------------------------
    @property
    def size_(self) -> int:
        return self.input_size or get_profile(self.profile).input_size

    def stage_features(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        """The backbone's outputs ``[(B, C_s, H_s, W_s)]`` at ``layers`` for RGB uint8 images."""
        backbone = get_backbone(get_profile(self.profile).backbone)
        with torch.inference_mode():
            stages = backbone.forward_stages(to_batch(images, self.size_), upto=max(self.layers))
        return [stages[i] for i in self.layers]

    def _new_model(self, feature_dim: int, bank_size: int) -> PatchCoreModel:
        return PatchCoreModel(feature_dim, bank_size, pool=self.pool, position_weight=self.position_weight)

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, images: list[np.ndarray], progress: Progress | None = None) -> PatchCoreDetector:
        """Learn from good RGB uint8 images ``(H, W, 3)`` (at least two)."""
        report = progress or (lambda stage, fraction: None)
        if len(images) < 2:
            raise ValueError("an anomaly model needs at least two good images")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {self.augment!r}; choose one of {', '.join(AUGMENTATIONS)}")
        variants = AUGMENTATIONS[self.augment]
        jobs = [(index, transform) for index in range(len(images)) for transform in variants]
        embeddings: list[torch.Tensor] = []
        model: PatchCoreModel | None = None
        for start in range(0, len(jobs), BATCH):
            batch = [transform(images[index]) for index, transform in jobs[start : start + BATCH]]
            stages = self.stage_features(batch)
            if model is None:
                model = self._new_model(sum(s.shape[1] for s in stages), 0)
            embeddings.append(model.embed(stages))
            report("features", min(1.0, (start + BATCH) / len(jobs)))
        assert model is not None
        embedding = torch.cat(embeddings)  # (n * A, D, h, w)
        patches_per_image = embedding.shape[2] * embedding.shape[3]
        rows = model.flatten(embedding)
        sources = torch.arange(len(images)).repeat_interleave(len(variants) * patches_per_image)
        report("coreset", 0.0)
        chosen = coreset_indices(rows, self.bank_rows, seed=self.seed)
        model.set_memory_bank(rows[chosen])
        bank_sources = sources[chosen]
        report("calibration", 0.0)
        originals = embedding[:: len(variants)]  # the untransformed image comes first
        leave_one_out = np.empty(len(images))
        with torch.inference_mode():
            for index in range(len(images)):
                distances = model.nearest_distances(model.flatten(originals[index : index + 1]),
                                                    exclude=bank_sources == index)
                leave_one_out[index] = float(distances.max())
                report("calibration", (index + 1) / len(images))
        self.model_ = model.eval()
        self.calibration_ = calibrate(leave_one_out, self.false_alarm)
        self.reference_scores_ = [float(s) for s in self.calibration_.normalise(leave_one_out)]
        self.n_images_ = len(images)
        return self

    # --- predicting ----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this anomaly model is not trained yet: call fit() or load() first")

    def score_stages(self, stages: list[torch.Tensor]) -> tuple[np.ndarray, torch.Tensor]:
        """Raw image scores ``(B,)`` and patch distances ``(B, h, w)`` from backbone stage outputs."""
        self._check_fitted()
        with torch.inference_mode():
            scores, patches = self.model_(stages)
        return scores.numpy().astype(np.float64), patches

    def score_samples(self, images: list[np.ndarray]) -> np.ndarray:
        """Normalised image scores ``(N,)`` (0.5 at the threshold), without maps."""
        raw = np.concatenate([self.score_stages(self.stage_features(images[i : i + BATCH]))[0]
                              for i in range(0, len(images), BATCH)]) if images else np.empty(0)
        return self.calibration_.normalise(raw) if images else raw

    def predict(self, images: list[np.ndarray], threshold: float = 0.5) -> list[AnomalyResult]:
        """Score, map at each image's resolution and regions at or above ``threshold`` (normalised)."""
        results = []
        for image in images:
            raw, patches = self.score_stages(self.stage_features([image]))
            raw_map = anomaly_map(patches[0], image.shape[:2], self.sigma)
            score_map = self.calibration_.normalise(raw_map).astype(np.float32)
            results.append(AnomalyResult(float(self.calibration_.normalise(raw[0])), float(raw[0]), score_map,
                                         find_regions(score_map, threshold)))
        return results

    # --- artifacts -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        self._check_fitted()
        meta = {"kind": self.kind, "params": self.get_params(),
                "calibration": {"threshold": self.calibration_.threshold, "scale": self.calibration_.scale},
                "reference_scores": self.reference_scores_, "n_images": self.n_images_}
        save_artifact(folder, self.model_.state_dict(), meta)

    @classmethod
    def load(cls, folder: Path) -> PatchCoreDetector:
        tensors, meta = load_artifact(folder)
        try:
            if meta["kind"] != cls.kind:
                raise KeyError(f"kind is {meta['kind']!r}")
            params = dict(meta["params"])
            params["layers"] = tuple(params["layers"])
            detector = cls(**params)
            bank = tensors["memory_bank"]
            extra = 2 if detector.position_weight > 0 else 0
            model = detector._new_model(bank.shape[1] - extra, bank.shape[0])
            model.load_state_dict(tensors, strict=True)
            calibration = Calibration(float(meta["calibration"]["threshold"]), float(meta["calibration"]["scale"]))
            references = [float(s) for s in meta["reference_scores"]]
            n_images = int(meta["n_images"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ArtifactError(f"{folder} does not hold a usable anomaly model: {error}") from error
        detector.model_ = model.eval()
        detector.calibration_ = calibration
        detector.reference_scores_ = references
        detector.n_images_ = n_images
        return detector
