"""The discriminant projection of patch features: what its docstring promises, on synthetic patches
whose good variation and defect direction are known."""

from __future__ import annotations

import torch

from models.projection import discriminant_projection, project

D, H, W = 12, 6, 6


def _patches(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """20 goods varying strongly along channel 0 and weakly elsewhere; 10 defects that have one patch
    shifted along ``direction`` (channels 3 and 4) at a random position."""
    generator = torch.Generator().manual_seed(seed)
    spread = torch.full((D,), 0.3)
    spread[0] = 5.0  # large, harmless variation between good parts
    goods = torch.randn(20, D, H, W, generator=generator) * spread[:, None, None]
    defects = torch.randn(10, D, H, W, generator=generator) * spread[:, None, None]
    direction = torch.zeros(D)
    direction[3], direction[4] = 0.6, 0.8
    for image in defects:
        i, j = torch.randint(0, H, (2,), generator=generator).tolist()
        image[:, i, j] += 4.0 * direction
    patches = torch.cat([goods, defects])
    is_good = torch.arange(30) < 20
    return patches, is_good, direction


def test_leading_direction_finds_the_defects_not_the_good_variation() -> None:
    patches, is_good, direction = _patches()
    projection = discriminant_projection(patches, is_good, dims=2, shrinkage=0.1, top=3)
    assert projection.shape == (D, 2) and projection.dtype == torch.float32
    leading = projection[:, 0] / projection[:, 0].norm()
    assert abs(float(leading @ direction)) > 0.9  # the defect direction, found from image labels only
    assert abs(float(leading[0])) < 0.2  # the goods' large variation (17 x the others' std) is mostly ignored
    plain = torch.linalg.svd(patches[is_good].permute(0, 2, 3, 1).reshape(-1, D), full_matrices=False).Vh[0]
    assert abs(float(plain[0])) > 0.9  # where plain PCA of the goods would look instead


def test_projected_goods_residuals_are_whitened() -> None:
    """``v' S_w v = 1`` for each direction (S_w shrunk as documented), directions S_w-orthogonal."""
    patches, is_good, _ = _patches(1)
    shrinkage = 0.2
    projection = discriminant_projection(patches, is_good, dims=4, shrinkage=shrinkage, top=3).double()
    goods = patches[is_good].double()
    residuals = ((goods - goods.mean(dim=0)) * (20 / 19)).permute(0, 2, 3, 1).reshape(-1, D)
    within = residuals.T @ residuals / residuals.shape[0]
    within = (1 - shrinkage) * within + shrinkage * torch.trace(within) / D * torch.eye(D, dtype=torch.float64)
    torch.testing.assert_close(projection.T @ within @ projection, torch.eye(4, dtype=torch.float64),
                               atol=1e-4, rtol=0)


def test_projected_distance_separates_defects_better_than_the_raw_one() -> None:
    patches, is_good, _ = _patches(2)
    projection = discriminant_projection(patches, is_good, dims=2, shrinkage=0.1, top=3)
    test, test_is_good, _ = _patches(3)  # new images of the same kind

    def separation(features: torch.Tensor, goods: torch.Tensor) -> float:
        """Share of (defect, good) pairs where the defect's farthest patch from the mean good is farther."""
        far = (features - goods.mean(dim=0)).square().sum(dim=1).flatten(1).max(dim=1).values
        return float((far[~test_is_good][:, None] > far[test_is_good][None, :]).float().mean())

    projected = separation(project(test, projection), project(patches[is_good], projection))
    raw = separation(test, patches[is_good])
    assert projected > 0.9 and projected > raw + 0.2, (projected, raw)
    assert project(test, projection).shape == (30, 2, H, W)
