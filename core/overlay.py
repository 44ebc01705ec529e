"""Colouring an anomaly map over the inspected image, for pages and reports."""

from __future__ import annotations

import cv2
import numpy as np

from models.anomaly.regions import Region

BOX_COLOUR = (255, 255, 255)  # RGB
JET_RGB = np.ascontiguousarray(  # OpenCV's JET lookup table in RGB order: (256, 1, 3) uint8
    cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_JET)[..., ::-1])


def heat_colours(score_map: np.ndarray) -> np.ndarray:
    """``score_map`` ``(H, W)`` in [0, 1] as JET colours ``(H, W, 3)`` uint8 RGB (blue = looks good,
    red = looks defective)."""
    levels = (np.clip(score_map, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.applyColorMap(levels, JET_RGB)


def overlay_anomaly_map(rgb: np.ndarray, score_map: np.ndarray, regions: list[Region] | None = None,
                        alpha: float = 0.45) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` uint8 with ``score_map`` ``(H, W)`` in [0, 1] blended in as a heat map
    (blue = looks good, red = looks anomalous) and each region's box drawn: ``(H, W, 3)`` uint8."""
    if score_map.shape != rgb.shape[:2]:
        raise ValueError(f"map {score_map.shape} and image {rgb.shape[:2]} differ in size")
    blended = cv2.addWeighted(rgb, 1.0 - alpha, heat_colours(score_map), alpha, 0.0)
    thickness = max(1, round(min(rgb.shape[:2]) / 150))
    for region in regions or []:
        x, y, w, h = region.box
        cv2.rectangle(blended, (x, y), (x + w - 1, y + h - 1), BOX_COLOUR, thickness)
    return blended
