"""Tiling on large parts: solar modules assembled from ELPV cells (issue 22).

A module is ``ROWS`` x ``COLS`` cells of 300 px with dark grid lines between them (about 1,800 x 3,000 px).
Goods are made of good cells (ELPV probability 0) only; a defective module has exactly one clearly
defective cell (probability 1) at a random place. Per seed: the anomaly model is trained on ``TRAIN``
good modules (cells disjoint from the test modules' cells), tiled (``models.tiling.TiledModel``, one
model per tile position) and untiled (the whole module at the network's input size), and judges
``TEST`` good and ``TEST`` defective modules. Figures: module AUC, localisation (share of defective
modules whose map peaks inside the defective cell), the tiled tool's memory (its saved tensors and the
process's peak RSS) and scoring ms per module and per tile (batch 1).

    flock /tmp/cpu-heavy.lock .venv/bin/python -m bench.tiling [--seeds 5]

Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from models.registry import build
from models.tiling import TiledModel, estimate_cost

ROWS, COLS, CELL, LINE = 6, 10, 300, 4
TRAIN, TEST = 10, 20
TILE, OVERLAP = 900, 75  # about 3 x 3 cells per tile (a cell ~80 px at 240), overlapping by a quarter cell
PROFILE = "balanced"
SYNTHETIC = 0  # no synthetic defects (raw patch features) per tile model: the product's 240 per model, x tiles,
# takes minutes per tool on a loaded 2-core machine


def load_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from elpv_dataset.utils import load_dataset

    images, probability, _ = load_dataset()
    return images, np.flatnonzero(probability == 0), np.flatnonzero(probability == 1)


def module(images: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """An RGB module of ``ROWS * COLS`` cells (row-major) with grid lines."""
    height, width = ROWS * CELL + (ROWS - 1) * LINE, COLS * CELL + (COLS - 1) * LINE
    out = np.full((height, width), 30, np.uint8)
    for k, cell in enumerate(cells):
        r, c = divmod(k, COLS)
        out[r * (CELL + LINE): r * (CELL + LINE) + CELL, c * (CELL + LINE): c * (CELL + LINE) + CELL] = images[cell]
    return np.repeat(out[:, :, None], 3, axis=2)


def cell_box(k: int) -> tuple[int, int, int, int]:
    r, c = divmod(k, COLS)
    return r * (CELL + LINE), c * (CELL + LINE), r * (CELL + LINE) + CELL, c * (CELL + LINE) + CELL


def make_sets(images, goods, defects, seed: int):
    """Training goods, test modules, labels and the defective cell of each test module (-1 for goods)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(goods)
    train_cells, test_cells = order[: TRAIN * ROWS * COLS // 2], order[TRAIN * ROWS * COLS // 2:]
    n = ROWS * COLS
    train = [module(images, rng.choice(train_cells, n, replace=False)) for _ in range(TRAIN)]
    test, labels, where = [], [], []
    for kind in (0, 1):
        for _ in range(TEST):
            cells = rng.choice(test_cells, n, replace=False)
            spot = -1
            if kind:
                spot = int(rng.integers(n))
                cells[spot] = rng.choice(defects)
            test.append(module(images, cells))
            labels.append(kind)
            where.append(spot)
    return train, test, np.array(labels), where


def inner(seed: int):
    return build("anomaly", profile=PROFILE, good_class="good", seed=seed)


def cheap_inner(seed: int):
    model = inner(seed)
    model.synthetic_images = SYNTHETIC
    return model


def peaks_inside(score_map: np.ndarray, spot: int) -> bool:
    y, x = np.unravel_index(int(np.argmax(score_map)), score_map.shape)
    y0, x0, y1, x1 = cell_box(spot)
    return y0 <= y < y1 and x0 <= x < x1


def evaluate(model, test, labels, where) -> tuple[dict, list[float]]:
    scores, hits, times = [], [], []
    for image, label, spot in zip(test, labels, where, strict=True):
        started = time.perf_counter()
        judgement = model.judge([image])[0]
        times.append((time.perf_counter() - started) * 1000)
        scores.append(judgement.score)
        if label:
            full = judgement.map if judgement.map.shape == image.shape[:2] else _upsized(judgement.map, image.shape[:2])
            hits.append(peaks_inside(full, spot))
    scores = np.array(scores)
    return {"auc": float(roc_auc_score(labels, scores)), "localisation": float(np.mean(hits)),
            "goods_flagged": float(np.mean(scores[labels == 0] > 0.5)),
            "defects_flagged": float(np.mean(scores[labels == 1] > 0.5)),
            "ms_module": float(np.median(times))}, times


def _upsized(score_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(score_map.astype(np.float32), shape[::-1], interpolation=cv2.INTER_LINEAR)


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def run_seed(images, goods, defects, seed: int) -> dict:
    train, test, labels, where = make_sets(images, goods, defects, seed)
    started = time.perf_counter()
    tiled = TiledModel(cheap_inner, tile_px=TILE, overlap=OVERLAP, seed=seed).fit(train)
    tiled_train = time.perf_counter() - started
    tiled_eval, _ = evaluate(tiled, test, labels, where)
    with tempfile.TemporaryDirectory() as folder:
        tiled.save(Path(folder))
        saved_mb = folder_mb(Path(folder))
    started = time.perf_counter()
    plain = inner(seed).fit(train)
    plain_train = time.perf_counter() - started
    plain_eval, _ = evaluate(plain, test, labels, where)
    tiles = len(tiled.boxes_)
    return {"seed": seed, "tiles": tiles, "tiled": {**tiled_eval, "train_s": tiled_train, "saved_mb": saved_mb,
                                                    "ms_tile": tiled_eval["ms_module"] / tiles},
            "untiled": {**plain_eval, "train_s": plain_train}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    images, goods, defects = load_cells()
    height, width = ROWS * CELL + (ROWS - 1) * LINE, COLS * CELL + (COLS - 1) * LINE
    print(f"modules {width} x {height} px, tile {TILE} px overlap {OVERLAP}: "
          f"{estimate_cost(height, width, TILE, OVERLAP, mb_per_tile=3.0, ms_per_tile=30.0).as_dict()} (estimate)")
    runs = []
    for seed in range(args.seeds):
        run = run_seed(images, goods, defects, seed)
        runs.append(run)
        t, u = run["tiled"], run["untiled"]
        print(f"seed {seed}: tiled AUC {t['auc']:.3f} loc {t['localisation']:.2f} {t['ms_module']:.0f} ms/module "
              f"({t['ms_tile']:.1f} ms/tile) train {t['train_s']:.0f} s saved {t['saved_mb']:.1f} MB | "
              f"untiled AUC {u['auc']:.3f} loc {u['localisation']:.2f} {u['ms_module']:.0f} ms | load "
              f"{os.getloadavg()[0]:.2f}", flush=True)

    def stat(kind: str, key: str) -> dict:
        values = [r[kind][key] for r in runs]
        return {"mean": round(float(np.mean(values)), 4), "min": round(float(np.min(values)), 4),
                "max": round(float(np.max(values)), 4)}

    summary = {kind: {key: stat(kind, key) for key in ("auc", "localisation", "ms_module", "goods_flagged",
                                                       "defects_flagged", "train_s")} for kind in ("tiled", "untiled")}
    summary["tiled"]["ms_tile"] = stat("tiled", "ms_tile")
    summary["tiled"]["saved_mb"] = stat("tiled", "saved_mb")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"bench": "tiling", "seeds": args.seeds, "tiles": runs[0]["tiles"], "tile_px": TILE,
                      "overlap": OVERLAP, "peak_rss_mb": round(peak_mb, 1), "load": os.getloadavg()[0],
                      "per_seed": runs, **summary,
                      "must": {"auc": summary["tiled"]["auc"]["mean"] >= 0.90,
                               "localisation": summary["tiled"]["localisation"]["mean"] >= 0.80}}))


if __name__ == "__main__":
    main()
