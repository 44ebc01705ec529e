"""Patch distances to an anomaly map at the input image's resolution."""

from __future__ import annotations

import cv2
import numpy as np
import torch

DEFAULT_SIGMA = 4.0


def anomaly_map(patch_scores: torch.Tensor, size: tuple[int, int], sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """``(h, w)`` patch distances upsampled bilinearly to ``size`` = (H, W) and blurred: ``(H, W)`` float32.

    The Gaussian blur (sigma in output pixels, 4 as in anomalib's PatchCore) removes the blockiness
    of the patch grid, so that the map peaks on the defect rather than on a patch corner. OpenCV
    does both steps: on a 2-core CPU it is an order of magnitude quicker than convolutions in torch.
    """
    height, width = size
    patches = patch_scores.detach().cpu().numpy().astype(np.float32)
    upsampled = cv2.resize(patches, (width, height), interpolation=cv2.INTER_LINEAR)
    if sigma <= 0:
        return upsampled
    return cv2.GaussianBlur(upsampled, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
