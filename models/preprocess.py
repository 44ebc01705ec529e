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
