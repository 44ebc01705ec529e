"""Positional nearest-good-patch distances: the kernel the classifier and the anomaly model share.

Inspected parts are aligned, so a query patch at grid position p is compared only with the good
patches at p + e for offsets ``|e| <= radius`` (each coordinate) that lie on the grid (PatchCore's
nearest-neighbour distance, Roth et al. 2022, restricted to a neighbourhood). The memory holds the
goods per position: ``(h * w, G, D)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_memory(goods: torch.Tensor) -> torch.Tensor:
    """Good patch maps ``(G, D, h, w)`` to the memory layout ``(h * w, G, D)``: per position, its goods."""
    return goods.flatten(2).permute(2, 0, 1).contiguous()


def prepare_memory(memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the distances need of ``memory (hw, G, D)``: its row-major transpose ``(hw, D, G)`` (bmm on
    row-major operands is ~10x faster) and its squared norms ``(hw, 1, G)``."""
    return memory.transpose(1, 2).contiguous(), (memory * memory).sum(dim=2)[:, None, :]


class PreparedMemory:
    """``prepare_memory`` of a module's memory buffer ``(..., G, D)`` (positions flattened), computed once
    per memory (not once per frame): again when the buffer is replaced or changed in place
    (``load_state_dict``, ``.to``)."""

    def __init__(self) -> None:
        self._memory: torch.Tensor | None = None
        self._version = -1
        self._prepared: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._memory is not memory or self._version != memory._version or self._prepared is None:
            self._prepared = prepare_memory(memory.reshape(-1, *memory.shape[-2:]))
            self._memory, self._version = memory, memory._version
        return self._prepared


def _shift(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """``y[..., i, j] = x[..., i - dy, j - dx]`` where that exists, else ``fill``; same shape as ``x``."""
    h, w = x.shape[-2:]
    r = max(abs(dy), abs(dx))
    if r == 0:
        return x
    padded = F.pad(x, (r, r, r, r), value=fill)
    return padded[..., r - dy : r - dy + h, r - dx : r - dx + w]


def _squared_to_goods(x: torch.Tensor, memory_t: torch.Tensor, bank_sq: torch.Tensor, radius: int) -> torch.Tensor:
    """Squared distances of each query patch's neighbourhood to the goods' patches at each position:
    ``x (n, D, h, w)`` -> ``(h * w, n * side * side, G)``; row ``(q, e)`` of position ``p`` is the patch of
    query ``q`` at ``p + e`` (zeros outside the grid)."""
    n, d, h, w = (int(size) for size in x.shape)  # constants in an exported graph
    side = 2 * radius + 1
    cols = F.unfold(x, side, padding=radius).reshape(n, d, side * side, h * w)
    cols = cols.permute(3, 0, 2, 1).reshape(h * w, n * side * side, d).contiguous()
    return bank_sq + (cols * cols).sum(dim=2, keepdim=True) - 2.0 * torch.bmm(cols, memory_t)


def nearest_good_distances(patches: torch.Tensor, memory: torch.Tensor, radius: int, *,
                           exclude: torch.Tensor | None = None,
                           prepared: tuple[torch.Tensor, torch.Tensor] | None = None,
                           chunk: int = 64) -> torch.Tensor:
    """Distance of each patch to the nearest good patch within ``radius`` grid cells.

    ``patches (B, D, h, w)``, ``memory (h * w, G, D)`` (``to_memory`` of the goods, same grid) ->
    ``(B, h, w)``. ``exclude (G,)`` boolean marks goods to ignore (leave-one-out); ``prepared`` is
    ``prepare_memory(memory)`` when the caller keeps it (not used with ``exclude``). The query's
    neighbourhoods are unfolded (small) rather than the goods' (large): one batched matmul per chunk
    of queries, ``(2 radius + 1)^2 * h * w * B * G * D`` multiply-adds, the minimum over the goods, then
    the minimum over the offsets.
    """
    b, d, h, w = (int(size) for size in patches.shape)  # constants in an exported graph (fixed grid, batch)
    if exclude is not None:
        memory, prepared = memory[:, ~exclude.to(memory.device)], None
    side = 2 * radius + 1
    memory_t, bank_sq = prepared or prepare_memory(memory)
    offsets = [(i - radius, j - radius) for i in range(side) for j in range(side)]  # unfold's order
    out = []
    for start in range(0, b, chunk):
        x = patches[start : start + chunk]
        n = x.shape[0]
        squared = _squared_to_goods(x, memory_t, bank_sq, radius)
        nearest = squared.amin(dim=2).reshape(h, w, n, side * side).permute(3, 2, 0, 1)  # (offsets, n, h, w)
        best = x.new_full((n, h, w), float("inf"))
        for index, (dy, dx) in enumerate(offsets):  # entry at p compares query p + e with the goods at p
            best = torch.minimum(best, _shift(nearest[index], dy, dx, float("inf")))
        out.append(best)
    return torch.cat(out).clamp_min(0.0).sqrt() if out else patches.new_zeros(0, h, w)


def distances_to_each_good(patches: torch.Tensor, memory: torch.Tensor, radius: int,
                           max_elements: int = 2**24) -> torch.Tensor:
    """Distance of each patch to the nearest patch *of each good* within ``radius`` grid cells:
    ``patches (B, D, h, w)``, ``memory (h * w, G, D)`` -> ``(B, G, h, w)``. The minimum over the goods is
    ``nearest_good_distances``; keeping them apart gives every leave-one-out distance in one pass
    (queries in chunks so that the work tensor stays under ``max_elements``)."""
    b, d, h, w = patches.shape
    goods = memory.shape[1]
    side = 2 * radius + 1
    memory_t, bank_sq = prepare_memory(memory)
    offsets = [(i - radius, j - radius) for i in range(side) for j in range(side)]
    chunk = max(1, max_elements // (h * w * side * side * max(goods, 1)))
    out = []
    for start in range(0, b, chunk):
        x = patches[start : start + chunk]
        n = x.shape[0]
        squared = _squared_to_goods(x, memory_t, bank_sq, radius)
        squared = squared.reshape(h, w, n, side * side, goods).permute(3, 2, 4, 0, 1)  # (offsets, n, G, h, w)
        best = x.new_full((n, goods, h, w), float("inf"))
        for index, (dy, dx) in enumerate(offsets):
            best = torch.minimum(best, _shift(squared[index], dy, dx, float("inf")))
        out.append(best)
    return torch.cat(out).clamp_min(0.0).sqrt() if out else patches.new_zeros(0, goods, h, w)
