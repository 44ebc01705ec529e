"""The positional nearest-good-patch kernel against a brute-force reference."""

from __future__ import annotations

import itertools

import pytest
import torch

from models.positional_memory import (
    PreparedMemory,
    distances_to_each_good,
    nearest_good_distances,
    prepare_memory,
    to_memory,
)


def _brute_force(patches: torch.Tensor, goods: torch.Tensor, radius: int,
                 exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``min`` over goods g and grid offsets e with ``p + e`` on the grid of ``|patch(p) - good_g(p + e)|``."""
    b, _, h, w = patches.shape
    out = torch.full((b, h, w), float("inf"), dtype=torch.float64)
    kept = [g for g in range(goods.shape[0]) if exclude is None or not exclude[g]]
    for q, i, j in itertools.product(range(b), range(h), range(w)):
        for g, dy, dx in itertools.product(kept, range(-radius, radius + 1), range(-radius, radius + 1)):
            if 0 <= i + dy < h and 0 <= j + dx < w:
                distance = torch.linalg.vector_norm(patches[q, :, i, j].double() - goods[g, :, i + dy, j + dx].double())
                out[q, i, j] = min(out[q, i, j], float(distance))
    return out


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_kernel_matches_brute_force(radius: int) -> None:
    generator = torch.Generator().manual_seed(radius)
    patches, goods = torch.randn(3, 5, 4, 6, generator=generator), torch.randn(4, 5, 4, 6, generator=generator)
    got = nearest_good_distances(patches, to_memory(goods), radius)
    assert got.shape == (3, 4, 6) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), _brute_force(patches, goods, radius), rtol=1e-5, atol=1e-5)
    memory = to_memory(goods)
    chunked = nearest_good_distances(patches, memory, radius, chunk=2, prepared=prepare_memory(memory))
    torch.testing.assert_close(chunked, got, rtol=0, atol=1e-6)


def test_kernel_excludes_the_marked_goods() -> None:
    generator = torch.Generator().manual_seed(7)
    patches, goods = torch.randn(2, 3, 5, 5, generator=generator), torch.randn(5, 3, 5, 5, generator=generator)
    exclude = torch.tensor([True, False, True, False, False])
    got = nearest_good_distances(patches, to_memory(goods), 1, exclude=exclude)
    torch.testing.assert_close(got.double(), _brute_force(patches, goods, 1, exclude), rtol=1e-5, atol=1e-5)
    # a query equal to a good is at distance 0 from it unless that good is excluded
    itself = goods[:1]
    assert float(nearest_good_distances(itself, to_memory(goods), 1).max()) < 1e-3
    assert float(nearest_good_distances(itself, to_memory(goods), 1, exclude=exclude).min()) > 0.1


def test_prepared_memory_follows_the_buffer() -> None:
    memory = to_memory(torch.randn(3, 4, 2, 2))
    cache = PreparedMemory()
    first = cache(memory)
    assert cache(memory) is first  # once per memory, not once per call
    memory.mul_(2.0)  # changed in place (load_state_dict copies in place)
    torch.testing.assert_close(cache(memory)[1], prepare_memory(memory)[1])
    grid_layout = memory.reshape(2, 2, 3, 4)  # the anomaly model's (h, w, K, D) buffer
    torch.testing.assert_close(cache(grid_layout)[0], prepare_memory(memory)[0])


def test_distances_to_each_good_give_every_leave_one_out_distance() -> None:
    generator = torch.Generator().manual_seed(3)
    goods, queries = torch.randn(5, 8, 6, 7, generator=generator), torch.randn(3, 8, 6, 7, generator=generator)
    memory = to_memory(goods)
    each = distances_to_each_good(queries, memory, 1, max_elements=500)  # several chunks
    assert each.shape == (3, 5, 6, 7)
    assert torch.allclose(each.amin(dim=1), nearest_good_distances(queries, memory, 1), atol=1e-4)
    left_out = torch.tensor([False, False, True, False, False])
    assert torch.allclose(each[:, ~left_out].amin(dim=1),
                          nearest_good_distances(queries, memory, 1, exclude=left_out), atol=1e-4)
