"""One loaded copy of each backbone per process, shared by every tool, thread and session."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import torch

from models.backbones.efficientnet_lite import EfficientNetLite, fold_batch_norm, load_pretrained
from models.device import get_device
from models.preprocess import to_batch
from models.profiles import Profile

_lock = threading.Lock()
_loaded: dict[str, EfficientNetLite] = {}


def get_backbone(name: str) -> EfficientNetLite:
    """The pretrained backbone ``name`` for inference, BatchNorm folded, on ``get_device()`` (loaded on
    first use; read-only afterwards)."""
    device = get_device()
    key = f"{name}@{device}"
    with _lock:
        if key not in _loaded:
            model = fold_batch_norm(load_pretrained(name)).to(device)
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            _loaded[key] = model
        return _loaded[key]


def pooled_head(backbone: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The network input ``(B, 3, S, S)`` to the globally averaged head activations ``(B, 1280)``."""
    return backbone.forward_stages(batch)[-1].mean(dim=(2, 3))


def pooled_features(
    profile: Profile,
    images: list[np.ndarray],
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Global-average-pooled head activations ``(N, 1280)`` of RGB uint8 images."""
    backbone = get_backbone(profile.backbone)
    chunks: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = to_batch(images[start : start + batch_size], profile.input_size).to(get_device())
            chunks.append(pooled_head(backbone, batch).cpu())
            if progress is not None:
                progress(min(start + batch_size, len(images)), len(images))
    return torch.cat(chunks) if chunks else torch.empty(0, 1280)
