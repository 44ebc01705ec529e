"""Tiling (models/tiling.py): the grid covers the ROI with overlap, stitching gives a known map back
exactly, the cost estimate is linear and bounded, and a tiled anomaly model trained on small
'modules' of real ELPV cells finds and localises a small scratch; it saves and loads through the
registry."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from models.anomaly import PatchCoreDetector
from models.anomaly.calibration import Calibration
from models.registry import build, load_model
from models.tiling import TOP_K, TiledModel, grid_cells, stitch, tile_scores
from models.tiling_plan import MAX_TILES, auto_tile, estimate_cost, tile_grid


@pytest.mark.parametrize(("height", "width", "tile", "overlap"),
                         [(1820, 3036, 600, 75), (480, 640, 224, 32), (100, 100, 224, 16), (513, 257, 256, 0)])
def test_tiles_cover_the_roi_and_overlap(height: int, width: int, tile: int, overlap: int) -> None:
    boxes = tile_grid(height, width, tile, overlap)
    covered = np.zeros((height, width), int)
    for y0, x0, y1, x1 in boxes:
        assert 0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width
        assert y1 - y0 == min(tile, height) and x1 - x0 == min(tile, width)
        covered[y0:y1, x0:x1] += 1
    assert (covered >= 1).all()
    ys, xs = sorted({b[0] for b in boxes}), sorted({b[1] for b in boxes})
    for starts in (ys, xs):  # neighbours overlap by at least ``overlap``
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


def test_stitching_gives_a_known_map_back_exactly() -> None:
    known = np.random.default_rng(0).random((700, 1000)).astype(np.float32)
    boxes = tile_grid(700, 1000, 256, 40)
    maps = [known[y0:y1, x0:x1].copy() for y0, x0, y1, x1 in boxes]
    assert np.array_equal(stitch(maps, boxes, known.shape), known)


def test_stitching_resizes_coarse_maps_and_keeps_the_worst_where_tiles_overlap() -> None:
    boxes = [(0, 0, 100, 100), (0, 50, 100, 150)]
    out = stitch([np.full((7, 7), 0.2, np.float32), np.full((14, 14), 0.9, np.float32)], boxes, (100, 150))
    assert out.shape == (100, 150)
    assert np.allclose(out[:, :50], 0.2) and np.allclose(out[:, 50:], 0.9)


def test_tile_and_overlap_are_validated() -> None:
    for tile, overlap in ((8, 0), (256, 256), (256, -1)):
        with pytest.raises(ValueError):
            tile_grid(500, 500, tile, overlap)


def test_auto_tiles_follow_the_defect_size_and_stay_bounded() -> None:
    tile, overlap = auto_tile(1820, 3036, 75, 240)
    assert tile == 600 and overlap == 75
    assert auto_tile(300, 300, 10, 224) == (224, 10)  # never below the network's resolution
    tile, overlap = auto_tile(20000, 20000, 8, 224)  # a tiny defect on a huge part: bounded tile count
    assert len(tile_grid(20000, 20000, tile, overlap)) <= MAX_TILES


def test_the_cost_is_linear_in_the_tile_count() -> None:
    one = estimate_cost(600, 600, 600, 0, mb_per_tile=3.0, ms_per_tile=40.0)
    six = estimate_cost(1200, 1800, 600, 0, mb_per_tile=3.0, ms_per_tile=40.0)
    assert (one.tiles, six.tiles) == (1, 6)
    assert six.mb == pytest.approx(6 * one.mb) and six.ms == pytest.approx(6 * one.ms)
    assert six.as_dict() == {"tiles": 6, "mb": 18.0, "ms": 240.0}


def test_a_large_map_normalises_in_float32_as_the_scores_do() -> None:
    calibration = Calibration(2.0, 0.5)
    raw = np.random.default_rng(0).normal(2.0, 3.0, (300, 400)).astype(np.float32)
    normalised = calibration.normalise_map(raw)
    assert normalised.dtype == np.float32 and normalised.shape == raw.shape
    assert np.allclose(normalised, calibration.normalise(raw), atol=1e-6)


def test_a_tile_scores_the_mean_of_its_top_k_patches() -> None:
    patches = np.zeros((2, 3, 3), np.float32)
    patches[0].flat[:] = np.arange(9)
    patches[1, 1, 1] = 6.0
    assert np.allclose(tile_scores(patches, 1), [8.0, 6.0])  # top 1: the worst patch
    assert np.allclose(tile_scores(patches, 3), [7.0, 2.0])
    assert np.allclose(tile_scores(patches, 100), [4.0, 6.0 / 9])  # at most every patch


# --- a tiled model on real cells -----------------------------------------------------------------
CELL = 150  # ELPV cells (300 px) halved: a 2 x 3 'module' of 300 x 450 px


def _module(cells: list[np.ndarray]) -> np.ndarray:
    small = [cv2.resize(c, (CELL, CELL), interpolation=cv2.INTER_AREA) for c in cells]
    return np.vstack([np.hstack(small[0:3]), np.hstack(small[3:6])])


def _inner(seed: int) -> PatchCoreDetector:
    return PatchCoreDetector(profile="fast", synthetic_images=0, seed=seed)


@pytest.fixture(scope="module")
def modules(elpv_subset: Path) -> list[np.ndarray]:
    cells = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((elpv_subset / "good").glob("*.png"))]
    rng = np.random.default_rng(0)
    return [_module([cells[i] for i in rng.choice(len(cells), 6, replace=False)]) for _ in range(9)]


@pytest.fixture(scope="module")
def tiled(modules: list[np.ndarray]) -> TiledModel:
    return TiledModel(_inner, tile_px=224, overlap=32).fit(modules[:6])


def _scratched(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    out = image.copy()
    cv2.line(out, (330, 200), (360, 222), (10, 10, 10), 3)  # about 40 px in a 300 x 450 part
    return out, (211, 345)


@pytest.mark.slow
def test_a_tiled_model_finds_and_localises_a_small_defect(tiled: TiledModel, modules: list[np.ndarray]) -> None:
    assert len(tiled.models_) == len(tile_grid(300, 450, 224, 32)) == 6
    goods = tiled.judge(modules[6:])
    bad, (cy, cx) = _scratched(modules[6])
    worst = tiled.judge([bad])[0]
    assert worst.score > max(g.score for g in goods)
    assert worst.map is not None and worst.map.shape == (300, 450)
    y, x = np.unravel_index(int(np.argmax(worst.map)), worst.map.shape)
    assert abs(y - cy) <= 30 and abs(x - cx) <= 30
    assert worst.regions  # the stitched map's area above the threshold
    assert len(tiled.reference_scores_) == 6


@pytest.mark.slow
def test_a_tiled_model_saves_and_loads_through_the_registry(tiled: TiledModel, modules: list[np.ndarray],
                                                            tmp_path: Path) -> None:
    tiled.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, TiledModel) and loaded.boxes_ == tiled.boxes_ and loaded.method == "anomaly"
    bad, _ = _scratched(modules[7])
    before, after = tiled.judge([bad])[0], loaded.judge([bad])[0]
    assert after.score == pytest.approx(before.score, abs=1e-5)
    assert np.allclose(after.map, before.map, atol=1e-5)
    half = cv2.resize(bad, (225, 150))  # another size: judged on the training grid, map at its own size
    assert loaded.judge([half])[0].map.shape == (150, 225)


def test_the_registry_builds_any_method_tiled() -> None:
    for method in ("anomaly", "classifier", "knn"):
        model = build(method, profile="fast", good_class="good", tiling=(256, 32))
        assert isinstance(model, TiledModel) and model.method == method and model.tile_px == 256
    assert not isinstance(build("anomaly", profile="fast", good_class="good"), TiledModel)


# --- a shared memory over the cells of a gridded part ----------------------------------------------------
LINE = 4  # dark grid lines between the cells, as on a solar module


def _gridded(cells: list[np.ndarray]) -> np.ndarray:
    """A 2 x 3 'module' of 150 px cells with 4 px dark lines between them (304 x 458 px)."""
    out = np.full((2 * CELL + LINE, 3 * CELL + 2 * LINE, 3), 30, np.uint8)
    for k, cell in enumerate(cells):
        r, c = divmod(k, 3)
        out[r * (CELL + LINE): r * (CELL + LINE) + CELL, c * (CELL + LINE): c * (CELL + LINE) + CELL] = \
            cv2.resize(cell, (CELL, CELL), interpolation=cv2.INTER_AREA)
    return out


def test_grid_cells_are_the_cells_between_dark_lines() -> None:
    gray = np.full((308, 458), 160.0)
    gray[150:154, :] = 30
    gray[:, 150:154] = gray[:, 304:308] = 30
    gray[:, 0:2] = 90  # a dim cell edge is no cell
    assert grid_cells(gray) == [(0, 0, 150, 150), (0, 154, 150, 304), (0, 308, 150, 458),
                                (154, 0, 308, 150), (154, 154, 308, 304), (154, 308, 308, 458)]
    assert grid_cells(np.full((300, 300), 100.0)) == []  # no lines: the caller falls back to the regular grid


@pytest.fixture(scope="module")
def gridded(elpv_subset: Path) -> list[np.ndarray]:
    cells = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((elpv_subset / "good").glob("*.png"))]
    rng = np.random.default_rng(1)
    return [_gridded([cells[i] for i in rng.choice(len(cells), 6, replace=False)]) for _ in range(9)]


@pytest.fixture(scope="module")
def shared(gridded: list[np.ndarray]) -> TiledModel:
    return TiledModel(_inner, tile_px=224, overlap=0, memory="shared", align=True).fit(gridded[:6])


@pytest.mark.slow
def test_a_shared_memory_on_the_cells_finds_and_localises_a_small_defect(shared: TiledModel,
                                                                          gridded: list[np.ndarray]) -> None:
    assert len(shared.boxes_) == 6  # the cells (a cell's dark edge may lose a pixel), not a square grid
    assert np.abs(np.subtract(shared.boxes_[4], (154, 154, 304, 304))).max() <= 2
    assert shared.centre_.shape == shared.spread_.shape == (6,) and len(shared.reference_scores_) == 6
    goods = shared.judge(gridded[6:])
    bad = gridded[6].copy()
    cv2.line(bad, (200, 200), (225, 220), (10, 10, 10), 3)  # in the middle cell of the second row
    worst = shared.judge([bad])[0]
    assert worst.score > max(g.score for g in goods)
    assert worst.map is not None and worst.map.shape == bad.shape[:2]
    y, x = np.unravel_index(int(np.argmax(worst.map if worst.map.max() < 1 else worst.raw_map)), worst.map.shape)
    assert 154 <= y < 308 and 154 <= x < 304
    assert shared.training_report()["tiling"]["memory"] == "shared"
    tiles = tile_scores(shared._patch_scores(shared._tiles(bad), False), shared.top_k)  # the worst tile's score
    assert shared.top_k == TOP_K and worst.raw_map.max() == pytest.approx(float(shared._standardised(tiles).max()),
                                                                           rel=1e-5)


@pytest.mark.slow
def test_a_shared_memory_saves_and_loads_through_the_registry(shared: TiledModel, gridded: list[np.ndarray],
                                                             tmp_path: Path) -> None:
    shared.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, TiledModel) and loaded.memory == "shared" and loaded.boxes_ == shared.boxes_
    assert loaded.top_k == shared.top_k
    before, after = shared.judge(gridded[7:8])[0], loaded.judge(gridded[7:8])[0]
    assert after.score == pytest.approx(before.score, abs=1e-5)
    assert np.allclose(after.map, before.map, atol=1e-5)


def test_the_registry_tiles_the_anomaly_model_with_a_shared_memory() -> None:
    assert build("anomaly", profile="fast", good_class="good", tiling=(256, 32), align=True).memory == "shared"
    assert build("classifier", profile="fast", good_class="good", tiling=(256, 32)).memory == "position"
    with pytest.raises(ValueError, match="good images only"):
        TiledModel(lambda s: build("classifier", profile="fast", good_class="good", seed=s), tile_px=256, overlap=0,
                   memory="shared")
