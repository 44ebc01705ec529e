"""The classifier head as a pure module: standardise pooled features, then a linear layer."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """``(N, D)`` pooled features to ``(N, K)`` class logits.

    Learned state lives in buffers (``feature_mean``, ``feature_std``) and the linear layer, so
    ``state_dict()`` carries all of it.
    """

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.feature_mean) / self.feature_std)
