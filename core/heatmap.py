"""Heatmaps for the review card: where the classifier that decided an inspection saw a defect."""

from __future__ import annotations

import cv2
import numpy as np

from core.images import decode_image
from core.overlay import overlay_anomaly_map
from core.studio import Studio
from models.artifacts import ArtifactError
from models.classifier import load_classifier
from storage import repository as repo


def defect_heatmap(model_folder: object, rgb: np.ndarray) -> np.ndarray:
    """The classifier's defect heatmap of ``rgb`` ``(H, W, 3)``, upsampled to ``(H, W)`` in [0, 1]."""
    model = load_classifier(model_folder)
    _, maps = model.predict_proba_and_heatmap([rgb])
    return cv2.resize(maps[0], (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)


def inspection_heatmap(studio: Studio, inspection_id: int) -> np.ndarray | None:
    """The kept image of an inspection with the defect heatmap of the classifier version that inspected
    it blended over it; None when the image, the version or its artifact is gone, or the version is not
    a classifier."""
    with studio.transaction() as session:
        inspection = repo.get_inspection(session, inspection_id)
        if inspection is None or inspection.image_key is None or inspection.model_version_id is None:
            return None
        version = repo.get_model_version(session, inspection.model_version_id)
        if version is None or version.kind != "classifier":
            return None
        folder, key = studio.settings.models_dir / version.artifact_dir, inspection.image_key
    try:
        rgb = decode_image(studio.images.read(key)).rgb
        heat = defect_heatmap(folder, rgb)
    except (ArtifactError, OSError, ValueError):
        return None
    return overlay_anomaly_map(rgb, heat)
