"""PatchCore-style anomaly model as a pure module: patch embedding and nearest-neighbour scoring.

Roth et al. 2022, "Towards Total Recall in Industrial Anomaly Detection" (PatchCore); layout after
anomalib's ``models/image/patchcore/torch_model.py``. The backbone is not part of this module (it
is shared, pretrained and frozen); ``forward`` takes its stage outputs. The only learned state is
the memory bank of good patches, a registered buffer, so ``state_dict()`` carries all of it.
"""

from __future__ import annotations

import torch
from torch import nn

from models.anomaly.components import embed_patches

QUERY_CHUNK = 4096  # patches compared with the memory bank at once (bounds the distance matrix)


class PatchCoreModel(nn.Module):
    """Distance of each patch to its nearest good patch.

    Args:
        feature_dim: channels of the concatenated stage features.
        bank_size: rows of the memory bank (filled by ``set_memory_bank``).
        pool: local averaging neighbourhood of the patch features.
        position_weight: weight of the patch's (row, column) in [0, 1] appended to its features;
            with aligned parts a patch is then matched preferably with good patches at the same
            place (0 turns this off).
    """

    def __init__(self, feature_dim: int, bank_size: int, pool: int = 3, position_weight: float = 0.0) -> None:
        super().__init__()
        self.pool = pool
        self.position_weight = position_weight
        extra = 2 if position_weight > 0 else 0
        self.register_buffer("memory_bank", torch.zeros(bank_size, feature_dim + extra))

    def embed(self, stages: list[torch.Tensor]) -> torch.Tensor:
        """Stage outputs ``[(B, C_s, H_s, W_s)]`` to patch embeddings ``(B, D, h, w)``."""
        patches = embed_patches(stages, self.pool)
        if self.position_weight <= 0:
            return patches
        b, _, h, w = patches.shape
        rows = torch.linspace(0, 1, h, dtype=patches.dtype).view(h, 1).expand(h, w)
        cols = torch.linspace(0, 1, w, dtype=patches.dtype).view(1, w).expand(h, w)
        position = torch.stack([rows, cols]).mul(self.position_weight).expand(b, -1, -1, -1)
        return torch.cat([patches, position], dim=1)

    @staticmethod
    def flatten(embedding: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` to one row per patch ``(B * h * w, D)``."""
        return embedding.permute(0, 2, 3, 1).reshape(-1, embedding.shape[1])

    def set_memory_bank(self, rows: torch.Tensor) -> None:
        self.memory_bank = rows.detach().float().contiguous()

    def nearest_distances(self, patches: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Euclidean distance ``(M,)`` of each row of ``patches`` ``(M, D)`` to the memory bank.

        ``exclude`` ``(K,)`` boolean marks bank rows to ignore (leave-one-out scoring).
        """
        bank = self.memory_bank if exclude is None else self.memory_bank[~exclude]
        bank_norms = bank.pow(2).sum(dim=1)
        out = []
        for chunk in patches.split(QUERY_CHUNK):
            squared = chunk.pow(2).sum(dim=1, keepdim=True) - 2 * chunk @ bank.T + bank_norms
            out.append(squared.min(dim=1).values.clamp_min(0).sqrt())
        return torch.cat(out)

    def forward(self, stages: list[torch.Tensor], exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores ``(B,)`` (the largest patch distance) and patch distances ``(B, h, w)``."""
        embedding = self.embed(stages)
        b, _, h, w = embedding.shape
        patch_scores = self.nearest_distances(self.flatten(embedding), exclude).view(b, h, w)
        return patch_scores.flatten(1).amax(dim=1), patch_scores
