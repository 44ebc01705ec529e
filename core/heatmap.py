"""Defect maps for the review card and analytics: where the model that decided an inspection saw a
defect (a patch-distance map: how far each part of the image is from the nearest good patch)."""

from __future__ import annotations

import cv2
import numpy as np

from core.images import decode_image, decode_map
from core.inspect.models import CACHE
from core.model_artifacts import ArtifactUnavailableError, fetch_artifact
from core.overlay import overlay_anomaly_map
from core.studio import Studio
from models.artifact_meta import ArtifactError
from storage import repository as repo


def defect_map(model_folder: object, rgb: np.ndarray) -> np.ndarray | None:
    """The defect map of ``rgb`` ``(H, W, 3)`` by the model in ``model_folder``, upsampled to ``(H, W)``
    in [0, 1]; None when the model gives no map."""
    judgement = CACHE.get(model_folder).judge([rgb])[0]
    if judgement.map is None:
        return None
    return cv2.resize(judgement.map, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)


def inspection_heatmap(studio: Studio, inspection_id: int) -> np.ndarray | None:
    """The kept image of an inspection with its defect map blended over it: the map the station stored
    with it, else the map of the model version that decided it (fetched from the object store); None when
    the image, the version or its artifact is gone, or the model gives no map."""
    with studio.transaction() as session:
        inspection = repo.get_inspection(session, inspection_id)
        if inspection is None or inspection.image_key is None:
            return None
        key, map_key = inspection.image_key, inspection.map_key
        version = None if inspection.model_version_id is None else \
            repo.get_model_version(session, inspection.model_version_id)
    if map_key is not None:
        try:
            rgb = decode_image(studio.images.read(key)).rgb
            stored = decode_map(studio.images.read(map_key))
        except (OSError, ValueError):
            return None
        heat = cv2.resize(stored, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        return overlay_anomaly_map(rgb, heat)
    if version is None:
        return None
    try:
        folder = fetch_artifact(studio, version)  # another station's model: from the object store
        rgb = decode_image(studio.images.read(key)).rgb
        heat = defect_map(folder, rgb)
    except (ArtifactError, ArtifactUnavailableError, OSError, ValueError):
        return None
    return None if heat is None else overlay_anomaly_map(rgb, heat)
