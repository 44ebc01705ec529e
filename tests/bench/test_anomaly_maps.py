"""bench/anomaly_maps.py's MVTec path on a generated MVTec AD-layout folder: the product imports it
(masks kept), trains on train/good, and the masks read back from the studio line up with the maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.anomaly_maps import run_mvtec
from bench.synthetic_defects import KINDS, draw_defect, write_mvtec_folder


def _gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def test_each_kind_draws_a_visible_defect_with_its_mask(elpv_subset: Path) -> None:
    cell = _gray(sorted((elpv_subset / "good").glob("*.png"))[0])
    for kind in KINDS:
        image, mask = draw_defect(cell, kind, np.random.default_rng(1))
        assert image.shape == cell.shape and image.dtype == np.uint8 and mask.shape == cell.shape
        assert mask.any() and not mask.all()
        changed = image.astype(int) != cell
        assert changed[mask].mean() > 0.5  # the marked pixels are drawn
    with pytest.raises(ValueError, match="unknown defect kind"):
        draw_defect(cell, "dent", np.random.default_rng(1))


def test_mvtec_path_localises_synthetic_defects(tmp_path: Path, elpv_subset: Path) -> None:
    goods = [_gray(p) for p in sorted((elpv_subset / "good").glob("*.png"))]  # 20 real good cells
    root = write_mvtec_folder(tmp_path / "cells", goods[:12], goods[12:15], goods[15:20], np.random.default_rng(0))
    row = run_mvtec(root, profile="fast", seed=0)
    assert (row["n_good"], row["imported"], row["rejected"]) == (12, 20, 0)
    assert (row["test_images"], row["defects_without_mask"]) == (8, 0)
    assert row["pixel_auroc"] > 0.8
    assert {f"pro_{kind}" for kind in KINDS} <= row.keys()
