"""Benchmark of the anomaly model extended with new goods (issue 18): a candidate in seconds against a
full retrain on the same goods, on ELPV (protocol of bench/anomaly.py).

Per seed: draw N old + M new good cells (defective: probability >= 0.5). In a temporary studio, train
the anomaly model on the N old goods (``core.training.train``, as ``python -m core train --method
anomaly``), import the M new goods, then build the candidate with the service
``core.model_versions.extend_anomaly`` (what ``python -m core models extend`` and the Models page call;
its seconds: reading the new samples, their features, memory, recalibration, saving). Full retrain on the
same N + M goods through ``train``. Both versions are loaded as ``predict`` loads them and scored on all
remaining cells (unseen by both) from cached backbone outputs (``bench.anomaly.backbone_cache``; the
detectors' own ``score_stages``). Reported per seed: image AUC of each, the difference, seconds, and the
share of unseen goods above each threshold (the calibration promises about 5 %).

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/anomaly_extend.py [--seeds 5] [--seed-offset 0] \
        [--old 20] [--new 20] [--max-test 800]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from sklearn.metrics import roc_auc_score

# isort: split

from bench.anomaly import TOOL, backbone_cache, import_cells, load_elpv, new_studio
from core.audit import SYSTEM, Actor
from core.auth.roles import Role
from core.inspect.models import load_tool_models
from core.model_versions import extend_anomaly
from core.training import train
from models.anomaly import PatchCoreDetector
from models.profiles import DEFAULT_PROFILE

BENCH = Actor("bench", "bench", Role.ADMIN)


def _scores(detector, views, rows: np.ndarray) -> np.ndarray:
    raw = np.concatenate([detector.score_stages([[s[rows[i : i + 64]] for s in view] for view in views])[0]
                          for i in range(0, len(rows), 64)])
    return detector.calibration_.normalise(raw)


def run_one(images, y, seed: int, n_old: int, n_new: int, views, position: dict[int, int], profile: str) -> dict:
    rng = np.random.default_rng(seed)
    goods = rng.choice(np.flatnonzero(y == 0), n_old + n_new, replace=False)
    old, new = goods[:n_old], goods[n_old:]
    test = np.setdiff1d(np.array(sorted(position)), goods)
    rows = np.array([position[i] for i in test])
    with tempfile.TemporaryDirectory() as folder:
        studio = new_studio(Path(folder) / "a")
        import_cells(studio, images, old, "good")
        train(studio, TOOL, method="anomaly", profile=profile, seed=seed, actor=SYSTEM)
        import_cells(studio, images, new, "good")
        started = time.perf_counter()
        extended = extend_anomaly(studio, TOOL, BENCH)
        extend_s = time.perf_counter() - started
        artifact_mb = max(sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
                          for d in (studio.settings.models_dir / TOOL).iterdir()) / 2**20
        candidate = load_tool_models(studio, TOOL, extended.version_id).models[0].model
        studio.engine.dispose()
        full_studio = new_studio(Path(folder) / "b")
        import_cells(full_studio, images, goods, "good")
        full = train(full_studio, TOOL, method="anomaly", profile=profile, seed=seed, actor=SYSTEM)
        retrained = load_tool_models(full_studio, TOOL, full.version_id).models[0].model
        full_studio.engine.dispose()
    truth = y[test]
    out = {}
    for name, detector in (("extend", candidate), ("full", retrained)):
        scores = _scores(detector, views, rows)
        out[f"{name}_auc"] = float(roc_auc_score(truth, scores))
        out[f"{name}_goods_flagged"] = float(np.mean(scores[truth == 0] > 0.5))
        out[f"{name}_memory_images"] = int(detector.model_.memory_bank.shape[2])
    out.update(extend_s=extend_s, artifact_mb=artifact_mb, full_s=full.seconds,
               auc_gap=out["full_auc"] - out["extend_auc"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-offset", type=int, default=0, help="first seed (hidden seeds: another range)")
    parser.add_argument("--old", type=int, default=20, help="goods of the active model")
    parser.add_argument("--new", type=int, default=20, help="goods appended")
    parser.add_argument("--max-test", type=int, default=0, help="score a fixed subset of this many cells (0: all)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    args = parser.parse_args()
    images, y = load_elpv()
    indices = np.arange(len(images))
    if args.max_test:
        indices = np.sort(np.random.default_rng(12345).choice(indices, args.max_test, replace=False))
    views, _ = backbone_cache(images, indices, PatchCoreDetector(profile=args.profile))
    position = {int(i): row for row, i in enumerate(indices)}
    runs = []
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        run = run_one(images, y, seed, args.old, args.new, views, position, args.profile)
        print(json.dumps({"seed": seed, **{k: round(v, 4) for k, v in run.items()}}), flush=True)
        runs.append(run)
    summary: dict[str, object] = {"profile": args.profile, "seeds": args.seeds, "seed_offset": args.seed_offset,
                                  "old_goods": args.old, "new_goods": args.new,
                                  "test_cells": len(indices) - args.old - args.new}
    for key in runs[0]:
        values = [r[key] for r in runs]
        summary[key + "_median"] = round(statistics.median(values), 4)
        summary[key + "_std"] = round(statistics.stdev(values), 4) if len(values) > 1 else 0.0
    summary["max_abs_auc_gap"] = round(max(abs(r["auc_gap"]) for r in runs), 4)
    summary["must_extend_s_le_5"] = summary["extend_s_median"] <= 5.0
    summary["must_auc_within_0_01_each_seed"] = summary["max_abs_auc_gap"] <= 0.01
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
