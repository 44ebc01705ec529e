"""Parts shared by the anomaly model: patch embedding and coreset sampling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def embed_patches(stages: list[torch.Tensor], pool: int = 3) -> torch.Tensor:
    """Locally averaged patch features of several stages, concatenated at the finest grid.

    Each ``(B, C_s, H_s, W_s)`` is averaged over a ``pool`` x ``pool`` neighbourhood (stride 1),
    resized bilinearly to the first stage's grid and concatenated: ``(B, sum C_s, H_0, W_0)``
    (Roth et al. 2022, PatchCore, section 3.1).
    """
    size = tuple(int(v) for v in stages[0].shape[-2:])  # constants in an exported graph
    parts = []
    for stage in stages:
        pooled = F.avg_pool2d(stage, pool, stride=1, padding=pool // 2, count_include_pad=False)
        if tuple(pooled.shape[-2:]) != size:
            pooled = F.interpolate(pooled, size=size, mode="bilinear", align_corners=False)
        parts.append(pooled)
    return torch.cat(parts, dim=1)


def coreset_indices(features: torch.Tensor, size: int, seed: int = 0, projection_dim: int = 32) -> torch.Tensor:
    """Indices of ``size`` rows of ``features`` ``(M, D)`` chosen by greedy k-center selection.

    Each step adds the row farthest from those chosen so far, so the subset covers the whole set
    (Sener & Savarese 2018; PatchCore's coreset with a random projection to speed up distances).
    """
    total = features.shape[0]
    if size >= total:
        return torch.arange(total)
    generator = torch.Generator().manual_seed(seed)
    work = features.float()
    if work.shape[1] > projection_dim:
        matrix = torch.randn(work.shape[1], projection_dim, generator=generator) / math.sqrt(projection_dim)
        work = work @ matrix
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(total, (1,), generator=generator))
    nearest = torch.linalg.vector_norm(work - work[chosen[0]], dim=1)
    for step in range(1, size):
        chosen[step] = int(torch.argmax(nearest))
        nearest = torch.minimum(nearest, torch.linalg.vector_norm(work - work[chosen[step]], dim=1))
    return chosen
