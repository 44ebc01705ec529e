"""Pixel-level quality of anomaly maps against ground-truth masks: pixel ROC AUC and PRO.

Both take a set of maps ``(N, H, W)`` (any real scores, higher = more anomalous) and boolean masks
of the same shape (True = defect pixel), pooled over all images as in the MVTec AD evaluation
(Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021): defect-free test images add
negative pixels only.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

MAX_FPR = 0.3  # PRO is integrated up to this false-positive rate (Bergmann et al. 2021)
MAX_PIXELS = 4_000_000  # pixel AUROC on a fixed random subset beyond this many pixels


def _stack(maps: Sequence[np.ndarray] | np.ndarray, masks: Sequence[np.ndarray] | np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Maps as float64 ``(N, H, W)`` and masks as bool ``(N, H, W)``, checked to match."""
    scores = np.stack([np.asarray(m, dtype=np.float64) for m in maps]) if len(maps) else np.empty((0, 0, 0))
    truth = np.stack([np.asarray(m).astype(bool) for m in masks]) if len(masks) else np.empty((0, 0, 0), bool)
    if scores.shape != truth.shape or scores.ndim != 3:
        raise ValueError(f"maps {scores.shape} and masks {truth.shape} must both be (N, H, W) of one shape")
    if not truth.any():
        raise ValueError("the masks hold no defect pixel: pixel-level metrics need at least one")
    if truth.all():
        raise ValueError("the masks hold no defect-free pixel: pixel-level metrics need at least one")
    if not np.isfinite(scores).all():
        raise ValueError("the maps hold NaN or infinite values")
    return scores, truth


def pixel_auroc(maps: Sequence[np.ndarray] | np.ndarray, masks: Sequence[np.ndarray] | np.ndarray,
                max_pixels: int = MAX_PIXELS, seed: int = 0) -> float:
    """ROC AUC of the map values ``(N, H, W)`` as a defect-pixel score, over all pixels of all images.

    Beyond ``max_pixels`` pixels, a uniform random subset of that many (``numpy`` Generator seeded
    with ``seed``, so the same inputs give the same figure) is scored to bound memory and time.
    """
    scores, truth = _stack(maps, masks)
    scores, truth = scores.ravel(), truth.ravel()
    if scores.size > max_pixels:
        keep = np.sort(np.random.default_rng(seed).choice(scores.size, max_pixels, replace=False))
        scores, truth = scores[keep], truth[keep]
        if truth.all() or not truth.any():
            raise ValueError("the pixel subset holds a single class: raise max_pixels")
    return float(roc_auc_score(truth, scores))


def pro_curve(maps: Sequence[np.ndarray] | np.ndarray, masks: Sequence[np.ndarray] | np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The per-region-overlap curve: false-positive rates and mean region overlaps ``(T + 1,)``, at
    every distinct map value as threshold (highest first), starting at (0, 0).

    A region is a connected component (8-connectivity, ``cv2.connectedComponents``) of a mask; its
    overlap at threshold t is the share of its pixels with a score >= t; the PRO is the mean over
    all regions of all images, the FPR the share of defect-free pixels with a score >= t. The same
    cumulative computation as MVTec's reference evaluation code (Bergmann et al. 2021).
    """
    scores, truth = _stack(maps, masks)
    region_weight = np.zeros(truth.shape, np.float64)  # 1 / region size on defect pixels
    n_regions = 0
    for index, mask in enumerate(truth):
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        sizes = np.bincount(labels.ravel(), minlength=count).astype(np.float64)
        sizes[0] = np.inf  # background: no overlap weight
        region_weight[index] = 1.0 / sizes[labels]
        n_regions += count - 1
    order = np.argsort(-scores.ravel(), kind="stable")
    sorted_scores = scores.ravel()[order]
    fpr = np.cumsum(~truth.ravel()[order], dtype=np.float64) / np.count_nonzero(~truth)
    pro = np.cumsum(region_weight.ravel()[order]) / n_regions
    last_of_value = np.append(np.diff(sorted_scores) != 0, True)  # ties pass a threshold together
    return (np.concatenate([[0.0], np.clip(fpr[last_of_value], 0, 1)]),
            np.concatenate([[0.0], np.clip(pro[last_of_value], 0, 1)]))


def pro_score(maps: Sequence[np.ndarray] | np.ndarray, masks: Sequence[np.ndarray] | np.ndarray,
              max_fpr: float = MAX_FPR) -> float:
    """Area under the PRO curve (``pro_curve``) for FPR in [0, ``max_fpr``], divided by ``max_fpr``:
    1.0 for a map that finds every region whole before any false positive (Bergmann et al. 2021).

    The curve is interpolated linearly at ``max_fpr`` (trapezoid rule between thresholds)."""
    if not 0.0 < max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in (0, 1], not {max_fpr}")
    fpr, pro = pro_curve(maps, masks)
    inside = fpr <= max_fpr  # a prefix: the FPR only grows, and reaches 1 at the lowest threshold
    x, y = fpr[inside], pro[inside]
    if x[-1] < max_fpr:
        after = x.size  # the first point past max_fpr
        x = np.append(x, max_fpr)
        y = np.append(y, np.interp(max_fpr, fpr[after - 1 : after + 1], pro[after - 1 : after + 1]))
    return float(np.trapezoid(y, x) / max_fpr)
