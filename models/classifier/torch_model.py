"""The few-shot inspection classifier as pure modules: no fitting, no files, only computation.

Pass or fail is decided by a **local** opinion: a PatchCore-style patch distance (Roth et al. 2022)
made for *aligned* parts. Mid-level patches are first projected onto the few directions in which the
training defects stand out against the variation of the goods (``projection.py``, learned from both
classes). Each projected patch is compared only with the good training patches at the same grid
position or one of its neighbours (``radius``), and its distance is divided by the typical distance
between good images at that position (the mean out-of-fold nearest distance of the goods there),
so busbars, edges and textured areas that vary a lot between good parts do not dominate. Summarised
per image by the maximum and the mean of the largest normalised distances, which a logistic layer
turns into P(defect).

Which defect it is (with several defect classes) is a **global** opinion: a linear head on
standardised, globally average-pooled features of the last backbone stages (multi-scale pooling),
fitted on the defective images only. (On ELPV a global head beside the patch opinion in the pass /
fail decision lowered the ROC AUC: 0.823 against 0.840 at K = 20.)

The same logistic layer applied to each patch's distance gives the defect map in the same forward
pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.graph_preprocess import network_input_graph
from models.positional_memory import PreparedMemory, nearest_good_distances
from models.projection import project

POOLED_STAGES = (5, 6, 7)  # indices into forward_stages(): stages 5 and 6 and the 1280-channel head
PATCH_STAGES = (3, 4)  # mid-level stages (stride 16) whose locally averaged features are the patches
N_LOCAL_STATS = 2  # per image: max normalised patch distance and mean of the top ones


def to_grid(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``x (B, C, H, W)`` average-pooled to ``grid``; unchanged when it has that size already (sizes are
    read as Python numbers, so an exported graph has no adaptive pooling where none is needed)."""
    return x if tuple(int(size) for size in x.shape[-2:]) == grid else F.adaptive_avg_pool2d(x, grid)


def patch_features(stages: list[torch.Tensor]) -> torch.Tensor:
    """Locally averaged (3 x 3) mid-level features ``(B, D, h, w)`` from backbone stage outputs."""
    grid = tuple(int(size) for size in stages[PATCH_STAGES[0]].shape[-2:])
    parts = [to_grid(F.avg_pool2d(stages[i], 3, 1, 1, count_include_pad=False), grid) for i in PATCH_STAGES]
    return torch.cat(parts, dim=1)


def pooled_maps(stages: list[torch.Tensor]) -> torch.Tensor:
    """The pooled stages on the coarsest grid ``(B, Dp, h', w')``; their spatial mean is the pooled
    vector (average pooling to a coarser grid keeps the mean)."""
    grid = tuple(int(size) for size in stages[POOLED_STAGES[-1]].shape[-2:])
    return torch.cat([to_grid(stages[i], grid) for i in POOLED_STAGES], dim=1)


def position_scale(nearest: torch.Tensor) -> torch.Tensor:
    """The typical distance of a good patch to the goods' memory at each position: ``(G, h, w)``
    out-of-fold nearest distances of good images (memory and projection learned without them) ->
    their mean ``(h, w)``, floored at 1 % of its mean so that no position divides by zero."""
    scale = nearest.mean(dim=0)
    return scale.clamp_min(0.01 * float(scale.mean()) + 1e-12)


def local_stats(distances: torch.Tensor, top_fraction: float) -> torch.Tensor:
    """``(B, P)`` patch distances to ``(B, 2)``: maximum and mean of the top ``top_fraction``."""
    top = max(1, round(int(distances.shape[1]) * top_fraction))  # int(): a constant in an exported graph
    return torch.stack([distances.max(dim=1).values, distances.topk(top, dim=1).values.mean(dim=1)], dim=1)


class FewShotHead(nn.Module):
    """Backbone stage outputs to class probabilities ``(B, K)`` and a defect map ``(B, h, w)``.

    Learned state lives in buffers and linear layers, so ``state_dict()`` carries all of it:
    ``projection`` ``(D, d)`` maps patch features to the discriminant directions, ``memory`` holds the
    good images' projected patches per position ``(h * w, G, d)``, ``position_scale`` ``(h, w)``
    divides the patch distances, ``local_mean`` / ``local_std`` standardise the local statistics and
    ``decision`` maps them to the defect logit; ``pooled_mean`` / ``pooled_std`` standardise the
    pooled features and ``defect_head`` maps them to logits of the ``K - 1`` defect classes.
    """

    def __init__(self, n_pooled: int, n_patch: int, n_dims: int, n_goods: int, grid: tuple[int, int],
                 n_classes: int, good_index: int, top_fraction: float, radius: int) -> None:
        super().__init__()
        self.good_index = good_index
        self.top_fraction = top_fraction
        self.radius = radius
        self.prepared_memory = PreparedMemory()
        self.register_buffer("projection", torch.zeros(n_patch, n_dims))
        self.register_buffer("memory", torch.zeros(grid[0] * grid[1], n_goods, n_dims))
        self.register_buffer("position_scale", torch.ones(*grid))
        self.register_buffer("local_mean", torch.zeros(N_LOCAL_STATS))
        self.register_buffer("local_std", torch.ones(N_LOCAL_STATS))
        self.decision = nn.Linear(N_LOCAL_STATS, 1)
        self.register_buffer("pooled_mean", torch.zeros(n_pooled))
        self.register_buffer("pooled_std", torch.ones(n_pooled))
        self.defect_head = nn.Linear(n_pooled, n_classes - 1)

    @property
    def names_defects(self) -> bool:
        """Whether there are several defect classes for the pooled-feature head to tell apart."""
        return self.defect_head.out_features > 1

    @property
    def last_stage(self) -> int | None:
        """The last backbone stage this head reads (``forward_stages(upto=...)``): the patch stages
        alone unless the defect head needs the pooled ones."""
        return None if self.names_defects else PATCH_STAGES[-1]

    def defect_logit(self, stats: torch.Tensor) -> torch.Tensor:
        """Raw local statistics ``(..., 2)`` to the logit of P(defect) ``(...)``."""
        return self.decision((stats - self.local_mean) / self.local_std)[..., 0]

    def probabilities(self, pooled: torch.Tensor | None, stats: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, K)`` from pooled features ``(B, Dp)`` (only read with several
        defect classes) and raw local statistics ``(B, 2)``: P(good) = 1 - P(defect), and P(defect)
        shared among the defect classes by the defect head."""
        defect = torch.sigmoid(self.defect_logit(stats))[:, None]
        if self.names_defects:
            defect = defect * torch.softmax(self.defect_head((pooled - self.pooled_mean) / self.pooled_std), dim=1)
        good = 1.0 - defect.sum(dim=1, keepdim=True)
        return torch.cat([defect[:, : self.good_index], good, defect[:, self.good_index :]], dim=1)

    def patch_distances(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` patch features to normalised distances to the nearest good patch ``(B, h, w)``
        (both projected)."""
        if patches.shape[-2:] != self.position_scale.shape:
            raise ValueError(f"patch grid {tuple(patches.shape[-2:])} differs from the model's "
                             f"{tuple(self.position_scale.shape)}")
        nearest = nearest_good_distances(project(patches, self.projection), self.memory, self.radius,
                                         prepared=self.prepared_memory(self.memory))
        return nearest / self.position_scale

    def forward(self, stages: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities ``(B, K)`` and defect map ``(B, h, w)`` in [0, 1] at the patch grid.

        The map at a location is the P(defect) the model would give an image whose patch distances
        all equalled that location's (both local statistics set to it).
        """
        distances = self.patch_distances(patch_features(stages))
        pooled = pooled_maps(stages).mean(dim=(2, 3)) if self.names_defects else None
        probabilities = self.probabilities(pooled, local_stats(distances.flatten(1), self.top_fraction))
        heatmap = torch.sigmoid(self.defect_logit(distances.unsqueeze(-1).expand(-1, -1, -1, N_LOCAL_STATS)))
        return probabilities, heatmap


def classify(backbone: nn.Module, head: FewShotHead, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The network input ``(B, 3, S, S)`` to probabilities ``(B, K)`` and defect maps ``(B, h, w)``: the one
    forward pass of ``FewShotClassifier.judge`` and of its exported graph."""
    return head(backbone.forward_stages(batch, upto=head.last_stage))


class ClassifierGraph(nn.Module):
    """What the classifier exports: an RGB uint8 crop ``(1, H, W, 3)`` to its score ``(1,)`` (1 - P(good)),
    defect map ``(1, h, w)`` and class probabilities ``(1, K)``, preprocessing included."""

    def __init__(self, backbone: nn.Module, head: FewShotHead, size: int, standardise: bool, good_index: int) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.size, self.standardise, self.good_index = size, standardise, good_index

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        probabilities, heatmap = classify(self.backbone, self.head,
                                          network_input_graph(image, self.size, self.standardise))
        return (1.0 - probabilities[:, self.good_index]).clamp(0.0, 1.0), heatmap, probabilities
