"""kNN on globally pooled features as a pure module: distances to the good images' features.

The learned state is one registered buffer, so ``state_dict()`` carries all of it.
"""

from __future__ import annotations

import torch
from torch import nn

from models.backbones.registry import pooled_head
from models.graph_preprocess import network_input_graph


def mean_nearest(distances: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the ``k`` smallest entries of each row of ``distances (B, G)``: ``(B,)``."""
    return distances.topk(min(k, distances.shape[1]), dim=1, largest=False).values.mean(dim=1)


class KnnModel(nn.Module):
    """Pooled features ``(B, D)`` to raw scores ``(B,)``: the mean Euclidean distance to the ``k``
    nearest good images' features ``memory (G, D)``."""

    def __init__(self, n_goods: int, feature_dim: int, k: int = 1) -> None:
        super().__init__()
        self.k = k
        self.register_buffer("memory", torch.zeros(n_goods, feature_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return mean_nearest(torch.cdist(features, self.memory), self.k)


class KnnGraph(nn.Module):
    """What the kNN model exports: an RGB uint8 crop ``(1, H, W, 3)`` to its normalised score ``(1,)``
    (``sigmoid((raw - threshold) / scale)``) and raw score ``(1,)``, preprocessing included."""

    def __init__(self, backbone: nn.Module, model: KnnModel, size: int, standardise: bool, threshold: float,
                 scale: float) -> None:
        super().__init__()
        self.backbone, self.model = backbone, model
        self.size, self.standardise, self.threshold, self.scale = size, standardise, threshold, scale

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.model(pooled_head(self.backbone, network_input_graph(image, self.size, self.standardise)))
        return torch.sigmoid(((raw - self.threshold) / self.scale).clamp(-50.0, 50.0)), raw
