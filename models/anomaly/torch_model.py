"""PatchCore-style anomaly model with a positional memory, as a pure module: patch embedding and scoring.

Roth et al. 2022, "Towards Total Recall in Industrial Anomaly Detection" (PatchCore); layout after
anomalib's ``models/image/patchcore/torch_model.py``. The backbone is not part of this module (it
is shared, pretrained and frozen); ``forward`` takes its stage outputs.

Inspected parts are aligned (a fixture, a perspective-corrected cell), so the memory keeps the good
patches *per grid position*: a patch is compared only with good patches at the same position or
within ``radius`` grid cells of it, and its distance is divided by the mean distance that good
images show at that position (``position_scale``: busbars and edges vary more than the middle of a
cell). Before matching, the patch features are projected onto a few discriminant directions
(``projection``, learned from the goods and synthetic defects drawn on them, ``models.projection``):
distances then ignore the ways good parts vary and weigh the ways defects differ. All three are
registered buffers, so ``state_dict()`` carries all the learned state.

Test-time flip: when the stage outputs of the mirror image are given too, the patch scores are the
mean of the image's and the mirror's (mirrored back), which steadies the score of symmetric parts.
"""

from __future__ import annotations

import torch
from torch import nn

from models.anomaly.components import embed_patches
from models.graph_preprocess import network_input_graph
from models.positional_memory import PreparedMemory, nearest_good_distances
from models.projection import project


class PatchCoreModel(nn.Module):
    """Position-aware nearest-good-patch distances.

    Args:
        feature_dim: channels ``D`` of the projected patch features.
        grid: patch grid ``(h, w)`` of the embedding.
        n_images: good images ``K`` in the memory.
        pool: local averaging neighbourhood of the patch features.
        radius: a patch is matched with good patches at most this many grid cells away.
    """

    def __init__(self, feature_dim: int, grid: tuple[int, int], n_images: int, pool: int = 3, radius: int = 1,
                 stage_dim: int | None = None) -> None:
        super().__init__()
        self.pool = pool
        self.radius = radius
        self.prepared_memory = PreparedMemory()
        h, w = grid
        self.register_buffer("memory_bank", torch.zeros(h, w, n_images, feature_dim))  # (h, w, K, D)
        self.register_buffer("position_scale", torch.ones(h, w))  # (h, w)
        self.register_buffer("projection", torch.eye(stage_dim or feature_dim, feature_dim))  # (sum C_s, D)

    def embed(self, stages: list[torch.Tensor]) -> torch.Tensor:
        """Stage outputs ``[(B, C_s, H_s, W_s)]`` to projected patch embeddings ``(B, D, h, w)``."""
        return self.project_patches(embed_patches(stages, self.pool))

    def project_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch features ``(B, sum C_s, h, w)`` to embeddings ``(B, D, h, w)``."""
        return project(patches, self.projection)

    def set_projection(self, projection: torch.Tensor) -> None:
        """The projection ``(sum C_s, D)`` of the patch features."""
        self.projection = projection.detach().float().contiguous()

    def set_memory(self, embedding: torch.Tensor) -> None:
        """Store good patch embeddings ``(K, D, h, w)`` as the memory ``(h, w, K, D)``."""
        self.memory_bank = embedding.detach().float().permute(2, 3, 0, 1).contiguous()

    def set_position_scale(self, scale: torch.Tensor) -> None:
        """Per-position divisor ``(h, w)`` of the patch distances."""
        self.position_scale = scale.detach().float().contiguous()

    def nearest_distances(self, embedding: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Distance ``(B, h, w)`` of each patch of ``embedding`` ``(B, D, h, w)`` to the nearest good patch
        within ``radius`` grid cells; ``exclude`` ``(K,)`` boolean marks memory images to ignore."""
        h, w, k, d = self.memory_bank.shape
        memory = self.memory_bank.reshape(h * w, k, d)  # a view: (hw, K, D)
        prepared = None if exclude is not None else self.prepared_memory(self.memory_bank)
        return nearest_good_distances(embedding, memory, self.radius, exclude=exclude, prepared=prepared)

    def patch_scores(self, embedding: torch.Tensor, mirrored: torch.Tensor | None = None,
                     exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Patch scores ``(B, h, w)`` (distance over the position's scale) of embeddings ``(B, D, h, w)``;
        with ``mirrored`` (the embeddings of the mirror images), the mean of both views."""
        if mirrored is None:
            return self.nearest_distances(embedding, exclude) / self.position_scale
        both = self.nearest_distances(torch.cat([embedding, mirrored]), exclude)  # one pass over the memory
        n = embedding.shape[0]
        return (both[:n] + both[n:].flip(-1)) / 2 / self.position_scale

    def forward(self, stages: list[torch.Tensor], mirrored: list[torch.Tensor] | None = None,
                exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores ``(B,)`` (the largest patch score) and patch scores ``(B, h, w)`` from the stage
        outputs of the images and, optionally, of their mirror images."""
        scores = self.patch_scores(self.embed(stages), None if mirrored is None else self.embed(mirrored), exclude)
        return scores.flatten(1).amax(dim=1), scores


def layer_stages(backbone: nn.Module, batch: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
    """The backbone's outputs ``[(B, C_s, H_s, W_s)]`` at ``layers`` for the network input ``(B, 3, S, S)``."""
    stages = backbone.forward_stages(batch, upto=max(layers))
    return [stages[i] for i in layers]


def split_views(stages: list[torch.Tensor], n: int) -> list[list[torch.Tensor]]:
    """Stage outputs of ``n`` images followed by their mirror images to the two views' outputs."""
    return [[s[:n] for s in stages], [s[n:] for s in stages]]


class AnomalyGraph(nn.Module):
    """What the anomaly model exports: an RGB uint8 crop ``(1, H, W, 3)`` to its normalised score ``(1,)``
    and patch map ``(1, h, w)`` (``sigmoid((raw - threshold) / scale)``, 0.5 at the threshold), then
    the raw score and patch scores; preprocessing and the mirror view (``test_flip``) included. The
    studio itself upsamples and blurs the raw patch scores to the crop's size before normalising them
    (``models.anomaly.anomaly_map``)."""

    def __init__(self, backbone: nn.Module, model: PatchCoreModel, size: int, standardise: bool,
                 layers: tuple[int, ...], test_flip: bool, threshold: float, scale: float) -> None:
        super().__init__()
        self.backbone, self.model = backbone, model
        self.size, self.standardise, self.layers, self.test_flip = size, standardise, tuple(layers), test_flip
        self.threshold, self.scale = threshold, scale

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        views = [image, image.flip(2)] if self.test_flip else [image]
        batch = torch.cat([network_input_graph(view, self.size, self.standardise) for view in views])
        stages = layer_stages(self.backbone, batch, self.layers)
        both = split_views(stages, 1) if self.test_flip else [stages, None]
        raw, patches = self.model(both[0], both[1])
        return self.normalise(raw), self.normalise(patches), raw, patches

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """``models.anomaly.calibration.Calibration.normalise`` in float32."""
        return torch.sigmoid(((raw - self.threshold) / self.scale).clamp(-50.0, 50.0))
