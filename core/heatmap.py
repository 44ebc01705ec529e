"""Heatmaps for the review card: where the classifier that decided an inspection saw a defect."""

from __future__ import annotations

import cv2
import numpy as np

from core.images import decode_image
from core.studio import Studio
from models.artifacts import ArtifactError
from models.classifier import FrozenFeatureClassifier
from models.classifier.cam import class_activation_map
from storage import repository as repo


def overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image ``(H, W, 3)`` with ``heat`` ``(H, W)`` in [0, 1] blended over it as a colour map."""
    colours = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (rgb * (1 - alpha) + colours * alpha).astype(np.uint8)


def inspection_heatmap(studio: Studio, inspection_id: int) -> np.ndarray | None:
    """The kept image of an inspection with the class activation map of the classifier version that
    inspected it (the defect it named against the good class); None when the image, the version or its
    artifact is gone, or the version is not a classifier."""
    with studio.transaction() as session:
        inspection = repo.get_inspection(session, inspection_id)
        if inspection is None or inspection.image_key is None or inspection.model_version_id is None:
            return None
        version = repo.get_model_version(session, inspection.model_version_id)
        tool = repo.get_tool_by_id(session, inspection.tool_id)
        if version is None or version.kind != "classifier":
            return None
        folder, key, good = studio.settings.models_dir / version.artifact_dir, inspection.image_key, tool.good_class
        label = inspection.label
    try:
        model = FrozenFeatureClassifier.load(folder)
        rgb = decode_image(studio.images.read(key)).rgb
    except (ArtifactError, OSError, ValueError):
        return None
    defects = [c for c in model.classes_ if c != good]
    if good not in model.classes_ or not defects:
        return None
    positive = label if label in defects else defects[0]
    return overlay(rgb, class_activation_map(model, rgb, positive, good))
