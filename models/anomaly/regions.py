"""Regions of an anomaly map above the threshold, as boxes and contours (OpenCV)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_AREA_FRACTION = 0.0005  # regions smaller than 0.05 % of the image are noise


@dataclass(frozen=True)
class Region:
    box: tuple[int, int, int, int]  # x, y, width, height in image pixels
    contour: list[tuple[int, int]]  # outline, (x, y) points
    peak: float  # highest normalised score inside

    def as_dict(self) -> dict[str, object]:
        return {"box": list(self.box), "contour": [list(p) for p in self.contour], "peak": round(self.peak, 4)}


def find_regions(score_map: np.ndarray, threshold: float = 0.5) -> list[Region]:
    """Connected regions of ``score_map`` ``(H, W)`` at or above ``threshold``, highest peak first."""
    mask = (score_map >= threshold).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = MIN_AREA_FRACTION * score_map.size
    regions = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if w * h < min_area:
            continue
        inside = np.zeros_like(mask)
        cv2.drawContours(inside, [contour], -1, 1, thickness=cv2.FILLED)
        peak = float(score_map[inside.astype(bool)].max())
        regions.append(Region((x, y, w, h), [(int(p[0][0]), int(p[0][1])) for p in contour], peak))
    return sorted(regions, key=lambda r: r.peak, reverse=True)
