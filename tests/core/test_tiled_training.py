"""A tool with tiling on (mode ``cells``) through the product: the cost is said before training, the
anomaly model trains tiled with a shared memory over the cells, and the map the engine gives the live
overlay and the one the review card blends (``core.heatmap``) are the stitched map of the whole part."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from core.audit import SYSTEM
from core.heatmap import defect_map
from core.inspect.engine import inspect
from core.inspect.models import load_tool_models
from core.samples import import_path
from core.studio import Studio
from core.tool_settings import change_settings
from core.tools import create_tool
from core.training import tiling_cost, tool_profile, train
from models.profiles import DEFAULT_PROFILE, TILED_PROFILE
from models.registry import load_model
from models.tiling import TiledModel
from storage import repository as repo

pytestmark = pytest.mark.slow
CELL, LINE = 150, 4
TOOL = "modules"


def _module(cells: list[np.ndarray]) -> np.ndarray:
    """A 2 x 3 module of 150 px ELPV cells with dark grid lines (304 x 458 px)."""
    out = np.full((2 * CELL + LINE, 3 * CELL + 2 * LINE, 3), 30, np.uint8)
    for k, cell in enumerate(cells):
        r, c = divmod(k, 3)
        out[r * (CELL + LINE): r * (CELL + LINE) + CELL, c * (CELL + LINE): c * (CELL + LINE) + CELL] = \
            cv2.resize(cell, (CELL, CELL), interpolation=cv2.INTER_AREA)
    return out


def test_a_tiled_tool_says_its_cost_trains_and_shows_the_stitched_map(studio: Studio, elpv_subset: Path,
                                                                      tmp_path: Path) -> None:
    cells = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((elpv_subset / "good").glob("*.png"))]
    rng = np.random.default_rng(2)
    modules = [_module([cells[i] for i in rng.choice(len(cells), 6, replace=False)]) for _ in range(8)]
    (tmp_path / "good").mkdir()
    for index, image in enumerate(modules[:7]):
        Image.fromarray(image).save(tmp_path / "good" / f"m{index}.png")
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    assert import_path(studio, TOOL, tmp_path, actor=SYSTEM).imported == 7
    assert tiling_cost(studio, TOOL, "anomaly") is None  # tiling off: nothing to say
    assert tool_profile(studio, TOOL) == DEFAULT_PROFILE
    change_settings(studio, TOOL, SYSTEM, {"tiling.mode": "cells", "tiling.tile_px": 150, "tiling.overlap": 0})
    cost = tiling_cost(studio, TOOL, "anomaly", "fast")
    assert cost is not None and cost["mode"] == "cells" and cost["roi"] == [458, 304]
    assert cost["tiles"] > 0 and cost["mb"] > 0 and cost["ms"] > 0
    assert tool_profile(studio, TOOL) == TILED_PROFILE == "fast"  # the tiled default: quicker per tile

    version_id = train(studio, TOOL, "anomaly", actor=SYSTEM).version_id  # no profile: the tool's
    with studio.transaction() as session:
        version = repo.get_model_version(session, version_id)
        folder = studio.settings.models_dir / version.artifact_dir
        assert version.profile == TILED_PROFILE
    model = load_model(folder)
    assert isinstance(model, TiledModel) and model.memory == "shared" and len(model.boxes_) == 6

    bad = modules[7].copy()
    cv2.line(bad, (200, 200), (225, 220), (10, 10, 10), 3)  # in the middle cell of the second row
    inspection = inspect(load_tool_models(studio, TOOL), bad, roi="whole")
    assert inspection.map is not None and inspection.map.shape == bad.shape[:2]  # the live overlay's map
    heat = defect_map(folder, bad)  # the review card's
    assert heat is not None and heat.shape == bad.shape[:2]
    raw = model.judge([bad])[0].raw_map
    y, x = np.unravel_index(int(np.argmax(raw)), raw.shape)
    assert 150 <= y < 304 and 150 <= x < 308
    assert heat[150:, 150:308].max() == pytest.approx(heat.max())
