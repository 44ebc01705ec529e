"""The tiling plan, without torch: how a ROI is cut into tiles and what a tiled tool costs before training.

Plain arithmetic (``core.tool_settings`` validates and prices a tool's tiling with it, the command line
included, without loading a network); ``models.tiling`` cuts, judges and stitches with the same grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_TILES = 64  # the most tiles one tool may cut its ROI into (memory and time are linear in it)
Box = tuple[int, int, int, int]  # y0, x0, y1, x1 in ROI pixels


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: stride ``tile - overlap``, the last tile flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(count)]
    return sorted(set(starts))


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Box]:
    """The tiles covering a ``height`` x ``width`` ROI: ``tile`` px squares (smaller where the ROI is),
    neighbours overlapping by at least ``overlap`` px, row-major."""
    if tile < 16 or not 0 <= overlap < tile:
        raise ValueError(f"a tile is at least 16 px and overlaps less than its size (tile {tile}, overlap {overlap})")
    return [(y, x, min(y + tile, height), min(x + tile, width))
            for y in _starts(height, tile, overlap) for x in _starts(width, tile, overlap)]


def auto_tile(height: int, width: int, defect_px: int, native_px: int) -> tuple[int, int]:
    """Tile size and overlap for a ROI where the smallest defect to find is about ``defect_px``: a tile
    at most ``8 x defect_px`` (a defect keeps >= 1/8 of the tile the network sees at ``native_px``), not
    below the native resolution, overlapping by one defect, and enlarged until at most ``MAX_TILES``."""
    tile = max(native_px, min(8 * defect_px, max(height, width)))
    overlap = min(defect_px, tile // 4)
    while len(tile_grid(height, width, tile, overlap)) > MAX_TILES:
        tile = int(tile * 1.25)
    return tile, overlap


@dataclass(frozen=True)
class TilingCost:
    """What a tiled tool costs, before training: tiles, memory and scoring time per part."""

    tiles: int
    mb: float
    ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"tiles": self.tiles, "mb": round(self.mb, 1), "ms": round(self.ms, 1)}


# Per tile (bench/tiling.py, bench/RESULTS.md "Tiling: session 10"): MB of the saved model and ms to judge one tile on
# 2 cores with the tiled default profile (fast): anomaly, shared memory of 10 modules x 60 cells: 103.3 MB saved / 60
# tiles = 1.7 MB; a 60-cell module judged in 941 ms median on a quiet machine (load 1.6) = 15.7 ms per tile (the
# balanced profile takes about twice the network time). Methods not measured take the largest.
PER_TILE: dict[str, tuple[float, float]] = {"anomaly": (1.7, 15.7)}


def tile_cost(method: str) -> tuple[float, float]:
    """MB and ms one tile position costs with ``method`` (``PER_TILE``)."""
    return PER_TILE.get(method, max(PER_TILE.values()))


def estimate_cost(height: int, width: int, tile: int, overlap: int, *, mb_per_tile: float,
                  ms_per_tile: float, base_mb: float = 0.0) -> TilingCost:
    """Tiles, MB and ms of a tiled tool on a ``height`` x ``width`` ROI (linear in the tile count; the
    per-tile figures are a method's measured ones, bench/RESULTS.md "Tiling")."""
    tiles = len(tile_grid(height, width, tile, overlap))
    return TilingCost(tiles, base_mb + tiles * mb_per_tile, tiles * ms_per_tile)
