"""Tiling on large parts: solar modules assembled from ELPV cells (issue 22).

A module is ``ROWS`` x ``COLS`` cells of 300 px with 4 px dark grid lines between them (3,036 x 1,820 px).
Goods are made of good cells (ELPV defect probability 0) only; a defective module has exactly one
defective cell of probability 1 (the annotators' "certainly defective"; the 1/3 and 2/3 cells are not
used) at a random place. ELPV mixes two cell types (mono- and polycrystalline) and a real module is made
of one: by default each module is of **one type** (test modules: the type drawn at random, the defective
cell of the same type; training: half the modules of each type); ``--mixed`` keeps the construction of
sessions 7-9 (cells of both types at random in every module). Per seed: ``TRAIN`` good modules for
training, made of 600 distinct good cells (no cell twice); ``TEST`` good and ``TEST`` defective test
modules from the other good cells. Each
variant (``VARIANTS``) is a ``models.tiling.TiledModel`` over the anomaly model; the untiled anomaly
model (the whole module at the network's input size) is judged beside it. Figures: module AUC,
localisation (share of defective modules whose map peaks inside the defective cell); for shared
memories also without the per-position standardisation (``*_raw``); the first variant's memory (its
saved files, and the peak RSS of a fresh process that loads it and judges a module, minus that process's
RSS before loading) and scoring ms per module and per tile (batch of tiles, without the feature cache).

Backbone features are cached per image content across seeds and variants (``FeatureCache``: the same
computation, reused; identical cells in different modules are computed once), and with ``--feature-cache FILE``
kept on disk between runs (a second run costs kNN time, not backbone time; the timing never uses it).

    flock /tmp/cpu-heavy.lock .venv/bin/python -m bench.tiling [--seeds 5] [--variants shared-cells,...]
        [--feature-cache /tmp/tiling-features.pt] [--mixed]

Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from models.anomaly import PatchCoreDetector
from models.profiles import DEFAULT_PROFILE, TILED_PROFILE
from models.registry import build
from models.tiling import TiledModel

ROWS, COLS, CELL, LINE = 6, 10, 300, 4
TRAIN, TEST = 10, 20
TIMED = 5  # modules scored without the cache for the timing
VARIANTS: dict[str, dict] = {
    "shared-cells": {"memory": "shared", "align": True, "tile_px": 300, "overlap": 0},
    "shared-304": {"memory": "shared", "tile_px": 304, "overlap": 0},
    "shared-600": {"memory": "shared", "tile_px": 600, "overlap": 75},
    "shared-900": {"memory": "shared", "tile_px": 900, "overlap": 75},
    "position-900": {"memory": "position", "tile_px": 900, "overlap": 75, "synthetic_images": 0},
    "position-cells": {"memory": "position", "align": True, "tile_px": 300, "overlap": 0, "synthetic_images": 0},
}


class FeatureCache:
    """``PatchCoreDetector.stage_features`` memoised per (settings, image content); ``enabled`` off for timing."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.store: dict[str, list[torch.Tensor]] = (
            torch.load(path, weights_only=True) if path is not None and path.exists() else {})
        self.enabled = True
        self.original = PatchCoreDetector.stage_features

    def save(self) -> None:
        """Write the cache to its file (when it has one), atomically."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial")
            torch.save(self.store, partial)
            partial.replace(self.path)

    def install(self) -> None:
        cache = self

        def cached(detector: PatchCoreDetector, images: list[np.ndarray]) -> list[torch.Tensor]:
            if not cache.enabled:
                return cache.original(detector, images)
            settings = (detector.profile, detector.size_, detector.standardise, tuple(detector.layers))
            keys = [f"{settings}{image.shape}" + hashlib.blake2b(np.ascontiguousarray(image).tobytes(),
                                                                 digest_size=16).hexdigest() for image in images]
            missing = [k for k in dict.fromkeys(keys) if k not in cache.store]
            if missing:
                stages = cache.original(detector, [images[keys.index(k)] for k in missing])
                for row, key in enumerate(missing):
                    cache.store[key] = [s[row].clone() for s in stages]
            return [torch.stack([cache.store[k][s] for k in keys]) for s in range(len(cache.store[keys[0]]))]

        PatchCoreDetector.stage_features = cached


def load_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ELPV's images, the indices of its good and of its probability-1 cells, and each image's type."""
    from elpv_dataset.utils import load_dataset

    images, probability, types = load_dataset()
    return images, np.flatnonzero(probability == 0), np.flatnonzero(probability == 1), np.asarray(types)


def module(images: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """An RGB module of ``ROWS * COLS`` cells (row-major) with grid lines."""
    height, width = ROWS * CELL + (ROWS - 1) * LINE, COLS * CELL + (COLS - 1) * LINE
    out = np.full((height, width), 30, np.uint8)
    for k, cell in enumerate(cells):
        y0, x0, y1, x1 = cell_box(k)
        out[y0:y1, x0:x1] = images[cell]
    return np.repeat(out[:, :, None], 3, axis=2)


def cell_box(k: int) -> tuple[int, int, int, int]:
    r, c = divmod(k, COLS)
    return r * (CELL + LINE), c * (CELL + LINE), r * (CELL + LINE) + CELL, c * (CELL + LINE) + CELL


def make_sets(images, goods, defects, seed: int, types: np.ndarray | None = None):
    """Training goods (distinct cells), test modules, labels and each test module's defective cell (-1: good).
    With ``types`` (each image's cell type) every module is of one type: half the training modules of each,
    a test module's type drawn at random and its defective cell of that type; without, types mix at random."""
    rng = np.random.default_rng(seed)
    n = ROWS * COLS
    order = rng.permutation(goods)
    if types is None:
        train_cells, test_pools, defect_pools = order[: TRAIN * n], [order[TRAIN * n:]], [defects]
    else:
        kinds = sorted(set(types[goods].tolist()))
        by_kind = [order[types[order] == kind] for kind in kinds]
        per_kind = [TRAIN // len(kinds) + (k < TRAIN % len(kinds)) for k in range(len(kinds))]
        train_cells = np.concatenate([cells[: m * n] for cells, m in zip(by_kind, per_kind, strict=True)])
        test_pools = [cells[m * n:] for cells, m in zip(by_kind, per_kind, strict=True)]
        defect_pools = [defects[types[defects] == kind] for kind in kinds]
    train = [module(images, train_cells[i * n: (i + 1) * n]) for i in range(TRAIN)]
    test, labels, where = [], [], []
    for kind in (0, 1):
        for _ in range(TEST):
            pool = int(rng.integers(len(test_pools))) if len(test_pools) > 1 else 0
            cells = rng.choice(test_pools[pool], n, replace=False)
            spot = -1
            if kind:
                spot = int(rng.integers(n))
                cells[spot] = rng.choice(defect_pools[pool])
            test.append(module(images, cells))
            labels.append(kind)
            where.append(spot)
    return train, test, np.array(labels), where


def inner(seed: int, profile: str, synthetic_images: int | None = None):
    model = build("anomaly", profile=profile, good_class="good", seed=seed)
    if synthetic_images is not None:
        model.synthetic_images = synthetic_images
    return model


def tiled(seed: int, profile: str, spec: dict) -> TiledModel:
    synthetic = spec.get("synthetic_images")
    return TiledModel(lambda s: inner(s, profile, synthetic), tile_px=spec["tile_px"], overlap=spec["overlap"],
                      seed=seed, memory=spec["memory"], align=spec.get("align", False))


def peaks_inside(score_map: np.ndarray, spot: int) -> bool:
    y, x = np.unravel_index(int(np.argmax(score_map)), score_map.shape)
    y0, x0, y1, x1 = cell_box(spot)
    return y0 <= y < y1 and x0 <= x < x1


def evaluate(model, test, labels, where) -> dict:
    """Module AUC and localisation (the raw map where the method has one: it ranks where the map saturates)."""
    scores, hits = [], []
    for image, label, spot in zip(test, labels, where, strict=True):
        judgement = model.judge([image])[0]
        scores.append(judgement.score if judgement.raw_map is None else float(judgement.raw_map.max()))
        if label:
            full = judgement.raw_map if judgement.raw_map is not None else judgement.map
            if full.shape != image.shape[:2]:
                import cv2
                full = cv2.resize(full.astype(np.float32), image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
            hits.append(peaks_inside(full, spot))
    return {"auc": float(roc_auc_score(labels, scores)), "localisation": float(np.mean(hits))}


def timed(model, test, cache: FeatureCache) -> float:
    """Median ms to judge one module, without the feature cache."""
    cache.enabled = False
    try:
        times = []
        for image in test[:TIMED]:
            started = time.perf_counter()
            model.judge([image])
            times.append((time.perf_counter() - started) * 1000)
        return float(np.median(times))
    finally:
        cache.enabled = True


MEMORY_PROBE = """
import json, sys
import numpy as np
from models.registry import load_model
def rss(field='VmRSS'):
    return int(open('/proc/self/status').read().split(field + ':')[1].split()[0]) / 1024
image = np.load(sys.argv[2])
import models.backbones.registry, torch
before = rss()
model = load_model(sys.argv[1])
loaded = rss()
model.judge([image])
peak = rss('VmHWM')  # this process's own high-water mark (ru_maxrss keeps the forking parent's RSS)
print(json.dumps({"before_mb": before, "loaded_mb": loaded, "peak_mb": peak}))
"""


def memory_mb(model: TiledModel, image: np.ndarray) -> dict:
    """The tool's saved MB, and a fresh process's peak RSS loading it and judging ``image`` minus its RSS
    before loading (Python, torch and numpy already imported)."""
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "tool")
        saved = sum(f.stat().st_size for f in (Path(folder) / "tool").rglob("*") if f.is_file()) / 2**20
        np.save(Path(folder) / "module.npy", image)
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(Path(folder) / "tool"),
                              str(Path(folder) / "module.npy")], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        probe = json.loads(out.stdout.strip().splitlines()[-1])
    return {"saved_mb": round(saved, 1), "process_peak_mb": round(probe["peak_mb"], 1),
            "loaded_mb": round(probe["loaded_mb"] - probe["before_mb"], 1),
            "tool_mb": round(probe["peak_mb"] - probe["before_mb"], 1)}


def unstandardised(model: TiledModel) -> TiledModel:
    """The same shared model without the per-position standardisation (centre 0, spread 1)."""
    plain = copy.copy(model)
    plain.centre_, plain.spread_ = np.zeros_like(model.centre_), np.ones_like(model.spread_)
    return plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--variants", default="shared-cells")
    parser.add_argument("--profile", default=TILED_PROFILE, help="the tiled variants' (the product's tiled default)")
    parser.add_argument("--untiled-profile", default=DEFAULT_PROFILE)
    parser.add_argument("--feature-cache", type=Path, default=None,
                        help="keep the backbone features in this file between runs (never used for the timing)")
    parser.add_argument("--untiled", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--mixed", action="store_true",
                        help="modules of cells of both types at random (sessions 7-9); default: one type per module")
    args = parser.parse_args()
    variants = args.variants.split(",")
    cache = FeatureCache(args.feature_cache)
    cache.install()
    images, goods, defects, types = load_cells()
    print(f"{len(goods)} good cells, {len(defects)} probability-1 cells, "
          f"{'mixed' if args.mixed else 'one type per module'}; load {os.getloadavg()[0]:.2f}", flush=True)
    runs: dict[str, list[dict]] = {name: [] for name in variants + (["untiled"] if args.untiled else [])}
    extra: dict = {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        train, test, labels, where = make_sets(images, goods, defects, seed, None if args.mixed else types)
        for name in variants:
            started = time.perf_counter()
            model = tiled(seed, args.profile, VARIANTS[name]).fit(train)
            run = {"seed": seed, "tiles": len(model.boxes_), "train_s": round(time.perf_counter() - started, 1),
                   **evaluate(model, test, labels, where)}
            if model.memory == "shared" and model.standardise:
                plain = evaluate(unstandardised(model), test, labels, where)
                run.update(auc_raw=plain["auc"], localisation_raw=plain["localisation"])
            if name == variants[0]:
                run["ms_module"] = timed(model, test, cache)
                run["ms_tile"] = round(run["ms_module"] / run["tiles"], 1)
                run["load_timed"] = round(os.getloadavg()[0], 2)
                if seed == args.first_seed:
                    extra["memory"] = memory_mb(model, test[0])
                    print(f"memory of one tiled tool: {json.dumps(extra['memory'])}", flush=True)
            runs[name].append(run)
            print(f"seed {seed} {name}: {json.dumps(run)} load {os.getloadavg()[0]:.2f}", flush=True)
        if args.untiled:
            started = time.perf_counter()
            model = inner(seed, args.untiled_profile).fit(train)
            run = {"seed": seed, "train_s": round(time.perf_counter() - started, 1),
                   **evaluate(model, test, labels, where)}
            runs["untiled"].append(run)
            print(f"seed {seed} untiled: {json.dumps(run)} load {os.getloadavg()[0]:.2f}", flush=True)
        cache.save()

    def stat(values: list[float]) -> dict:
        return {"mean": round(float(np.mean(values)), 4), "min": round(float(np.min(values)), 4),
                "max": round(float(np.max(values)), 4)}

    summary = {name: {key: stat([r[key] for r in rs]) for key in rs[0] if key not in ("seed", "tiles")}
               for name, rs in runs.items()}
    first = summary[variants[0]]
    print(json.dumps({"bench": "tiling", "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
                      "modules": "mixed" if args.mixed else "one type", "profile": args.profile,
                      "untiled_profile": args.untiled_profile,
                      "variants": {n: VARIANTS[n] for n in variants}, **extra,
                      "ms_module": first["ms_module"], "ms_tile": first["ms_tile"],
                      "load": os.getloadavg()[0], "summary": summary, "per_seed": runs,
                      "must": {"auc": first["auc"]["mean"] >= 0.90,
                               "localisation": first["localisation"]["mean"] >= 0.80,
                               "ms_module": first["ms_module"]["max"] <= 1500,
                               "memory": extra["memory"]["tool_mb"] <= 500}}))


if __name__ == "__main__":
    main()
