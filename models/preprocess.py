"""Images (H, W, 3) uint8 RGB to network input (B, 3, S, S) in [-1, 1] (TF-Lite convention)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

MEAN = 127.5
STD = 128.0


def _resized(image: np.ndarray, size: int) -> torch.Tensor:
    """One RGB uint8 image ``(H, W, 3)`` as a ``(1, 3, S, S)`` uint8 tensor, channels-last in memory.

    Antialiased bilinear resizing (a triangle filter as wide as the scale, like PIL's) on uint8:
    torch's vectorised path is about 3x faster than OpenCV's area resize at non-integer scales.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
    if tensor.shape[-2:] == (size, size):
        return tensor
    return F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def to_batch(images: list[np.ndarray], size: int) -> torch.Tensor:
    """Resize each RGB image to ``size`` x ``size`` and scale to about [-1, 1]: ``(B, 3, S, S)``.

    The batch is channels-last in memory: the backbone's convolutions run about 20 % faster on it
    than on a contiguous NCHW tensor on a 2-core CPU (measured at 224 px, Lite0).
    """
    batch = torch.cat([_resized(image, size) for image in images])
    batch = batch.contiguous(memory_format=torch.channels_last)
    return (batch.float() - MEAN) / STD


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
