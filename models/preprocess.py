"""Images (H, W, 3) uint8 RGB to network input (B, 3, S, S) in [-1, 1] (TF-Lite convention)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

MEAN = 127.5
STD = 128.0


def to_batch(images: list[np.ndarray], size: int) -> torch.Tensor:
    """Resize each RGB image to ``size`` x ``size`` and scale to about [-1, 1]: ``(B, 3, S, S)``."""
    resized = [
        cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR)
        for image in images
    ]
    array = np.stack(resized).astype(np.float32)
    tensor = torch.from_numpy(array).permute(0, 3, 1, 2)
    return (tensor - MEAN) / STD


def standardise_intensity(image: np.ndarray, mean: float = 128.0, std: float = 50.0) -> np.ndarray:
    """``image`` (uint8) with its intensities scaled to ``mean`` and standard deviation ``std`` over all
    pixels and channels, clipped to uint8 (same shape): parts photographed brighter, darker or with
    more contrast look alike to the network. One 256-entry lookup table, so it costs well under a
    millisecond per crop."""
    means, stds = cv2.meanStdDev(image)  # per channel
    overall = float(means.mean())
    spread = float(np.sqrt(max(0.0, float((stds**2 + means**2).mean()) - overall * overall)))
    table = np.clip((np.arange(256, dtype=np.float32) - overall) / (spread + 1e-6) * std + mean, 0, 255)
    return cv2.LUT(image, table.astype(np.uint8))
