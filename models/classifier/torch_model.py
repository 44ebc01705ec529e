"""The few-shot inspection classifier as pure modules: no fitting, no files, only computation.

Two opinions on an image, fused by a small learned layer (stacking):

* a **global** opinion: a linear head on standardised, globally average-pooled features of the last
  backbone stages (multi-scale pooling);
* a **local** opinion: for each mid-level patch, the distance to the nearest patch of the good
  training images (a PatchCore-style memory bank, Roth et al. 2022), summarised per image by its
  maximum and the mean of its largest values.

Because pooling and the heads are linear, the same layers applied to each location give a defect
map in the same forward pass: class-activation mapping (Zhou et al. 2016) for the global head,
the patch distances for the local one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOLED_STAGES = (5, 6, 7)  # indices into forward_stages(): stages 5 and 6 and the 1280-channel head
PATCH_STAGES = (3, 4)  # mid-level stages (stride 16) whose locally averaged features are the patches
N_LOCAL_STATS = 2  # per image: max patch distance and mean of the top patch distances


def patch_features(stages: list[torch.Tensor]) -> torch.Tensor:
    """Locally averaged (3 x 3) mid-level features ``(B, D, h, w)`` from backbone stage outputs."""
    grid = stages[PATCH_STAGES[0]].shape[-2:]
    parts = [F.adaptive_avg_pool2d(F.avg_pool2d(stages[i], 3, 1, 1, count_include_pad=False), grid)
             for i in PATCH_STAGES]
    return torch.cat(parts, dim=1)


def pooled_maps(stages: list[torch.Tensor]) -> torch.Tensor:
    """The pooled stages on the coarsest grid ``(B, Dp, h', w')``; their spatial mean is the pooled
    vector (average pooling to a coarser grid keeps the mean)."""
    grid = stages[POOLED_STAGES[-1]].shape[-2:]
    return torch.cat([F.adaptive_avg_pool2d(stages[i], grid) for i in POOLED_STAGES], dim=1)


def nearest_distances(patches: torch.Tensor, bank: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance of each row of ``patches (n, D)`` to its nearest row of ``bank (M, D)``: ``(n,)``."""
    bank_sq = (bank * bank).sum(dim=1)
    out = []
    for start in range(0, patches.shape[0], chunk):
        x = patches[start : start + chunk]
        squared = (x * x).sum(dim=1, keepdim=True) - 2.0 * x @ bank.T + bank_sq
        out.append(squared.min(dim=1).values.clamp_min(0.0).sqrt())
    return torch.cat(out) if out else patches.new_zeros(0)


def local_stats(distances: torch.Tensor, top_fraction: float) -> torch.Tensor:
    """``(B, P)`` patch distances to ``(B, 2)``: maximum and mean of the top ``top_fraction``."""
    top = max(1, round(distances.shape[1] * top_fraction))
    return torch.stack([distances.max(dim=1).values, distances.topk(top, dim=1).values.mean(dim=1)], dim=1)


class FewShotHead(nn.Module):
    """Backbone stage outputs to class logits ``(B, K)`` and a defect map ``(B, h, w)``.

    Learned state lives in buffers and linear layers, so ``state_dict()`` carries all of it:
    ``pooled_mean`` / ``pooled_std`` standardise the pooled features, ``global_head`` maps them to
    logits, ``bank`` holds good patches ``(M, D)``, ``local_mean`` / ``local_std`` standardise the
    local statistics, and ``fusion`` maps ``[global logits, local statistics]`` to the final logits.
    """

    def __init__(self, n_pooled: int, n_patch: int, n_bank: int, n_classes: int, good_index: int,
                 top_fraction: float) -> None:
        super().__init__()
        self.good_index = good_index
        self.top_fraction = top_fraction
        self.register_buffer("pooled_mean", torch.zeros(n_pooled))
        self.register_buffer("pooled_std", torch.ones(n_pooled))
        self.register_buffer("bank", torch.zeros(n_bank, n_patch))
        self.register_buffer("local_mean", torch.zeros(N_LOCAL_STATS))
        self.register_buffer("local_std", torch.ones(N_LOCAL_STATS))
        self.global_head = nn.Linear(n_pooled, n_classes)
        self.fusion = nn.Linear(n_classes + N_LOCAL_STATS, n_classes)

    def global_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """``(..., Dp)`` pooled features to ``(..., K)`` logits of the global head."""
        return self.global_head((pooled - self.pooled_mean) / self.pooled_std)

    def fuse(self, global_logits: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """Final logits ``(..., K)`` from global logits ``(..., K)`` and raw local statistics ``(..., 2)``."""
        return self.fusion(torch.cat([global_logits, (stats - self.local_mean) / self.local_std], dim=-1))

    def patch_distances(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` patch features to distances to the nearest good patch ``(B, h, w)``."""
        b, d, h, w = patches.shape
        flat = patches.permute(0, 2, 3, 1).reshape(-1, d)
        return nearest_distances(flat, self.bank).reshape(b, h, w)

    def forward(self, stages: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, K)`` and defect map ``(B, h, w)`` in [0, 1] at the patch grid.

        The map at a location is 1 - P(good) the model would give an image whose pooled features
        and patch distances all equalled that location's: the global head applied per location
        (CAM, coarse grid upsampled) and the patch distance used for both local statistics.
        """
        maps = pooled_maps(stages)
        distances = self.patch_distances(patch_features(stages))
        logits = self.fuse(self.global_logits(maps.mean(dim=(2, 3))),
                           local_stats(distances.flatten(1), self.top_fraction))
        h, w = distances.shape[-2:]
        local_global = self.global_logits(
            F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False).permute(0, 2, 3, 1))
        local_stats_map = distances.unsqueeze(-1).expand(-1, -1, -1, N_LOCAL_STATS)
        local_logits = self.fuse(local_global, local_stats_map)
        heatmap = 1.0 - torch.softmax(local_logits, dim=-1)[..., self.good_index]
        return logits, heatmap
