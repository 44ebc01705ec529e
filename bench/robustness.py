"""Robustness of the verdicts to light, position and motion (issue 22): ELPV, the classifier at K = 20
and the anomaly model at N = 20 (each with training-time augmentation off and on), tested unperturbed and
under each perturbation of ``bench/robust_features.PERTURBATIONS``, with each test-time variant of
``models.augment`` (and the mirror) off and on.

Protocol: for each seed the classifier's split is bench/fewshot.py's (K good + K defective cells) and the
anomaly model's goods are bench/anomaly.py's (N goods); both are trained by the product's own ``fit``
through ``models.registry.build`` (with ``augment=True`` as a tool's ``robustness.augment`` setting
trains them). Test set: a fixed random subset of ``SUBSET`` cells (the same
for every seed and perturbation; the seed's training cells left out), unperturbed and perturbed; the
untiled-accuracy check runs unperturbed on **all** remaining cells. Per model, variant and perturbation:
the goods' false-reject rate at the model's own operating threshold (score > threshold_, band ignored)
against the unperturbed one, and the image ROC AUC drop. Backbone stage outputs come from the on-disk
cache of bench/robust_features.py (float16); everything after the backbone is the product's code. TTA
is the mean of the views' scores, as ``models.tta.judge_views`` averages them.

Position correction (``models.registration``, setting "corrected", TTA off, on the subset): each perturbed
cell is seen in a camera frame (``bench/robust_features.frame``: the cell on a black fixture, the ROI its
place in the unmoved frame) and the ROI is cut again by the product's ``PartLocator``, fitted as the
product fits it on the model's own training goods (the classifier's K goods for both classifier kinds, the
anomaly model's N goods for both anomaly kinds), before the backbone.

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/robustness.py --cache --views id,mirror  # the cache, in parts
    flock /tmp/cpu-heavy.lock .venv/bin/python bench/robustness.py --cache --perturbations none --all-cells
    flock /tmp/cpu-heavy.lock .venv/bin/python bench/robustness.py --cache-corrected --seeds 0,1,2,3,4
    flock /tmp/cpu-heavy.lock .venv/bin/python bench/robustness.py [--seeds 0,1,2,3,4]  # the figures

Prints one JSON object per (model, TTA, perturbation), a Markdown table, and last one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

# isort: split

from bench import robust_features as rf
from models.anomaly import PatchCoreDetector
from models.classifier import FewShotClassifier
from models.registration import PartLocator
from models.registry import build
from models.tta import judge_views

PROFILE = "balanced"
K, N = 20, 20
SUBSET, SUBSET_SEED = 600, 12345
MODELS = rf.CACHE / "models"
TTA = {"off": ("id",), "mirror": ("id", "mirror"), "shift": ("id", "shift+", "shift-"),
       "light": ("id", "gamma-", "gamma+")}
KINDS = ("classifier", "classifier+augment", "anomaly", "anomaly+augment")
CORRECTED = "corrected"  # the position-correction setting, reported beside the TTA ones
SETTINGS = (*TTA, CORRECTED)
MUST_FR, MUST_AUC = 2.0, 0.03
FLOORS = {"classifier": {"balanced_accuracy": 0.774, "auc": 0.845}, "anomaly": {"auc": 0.847}}


def load_elpv() -> tuple[np.ndarray, np.ndarray]:
    from elpv_dataset.utils import load_dataset

    images, probability, _ = load_dataset()
    return images, (probability >= 0.5).astype(int)


def subset(n_cells: int) -> np.ndarray:
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n_cells, SUBSET, replace=False))


def tta_cells(n_cells: int) -> np.ndarray:
    """Every fourth cell of the subset: where the test-time views are measured (CPU budget)."""
    return subset(n_cells)[::4]


def cache_features(images: np.ndarray, perturbations: list[str], views: list[str], all_cells: bool) -> None:
    """Fill the feature cache: the identity view on the subset (with ``all_cells``: every cell), the
    other views on ``tta_cells``."""
    cells = np.arange(len(images)) if all_cells else subset(len(images))
    if views != ["id"]:
        cells = tta_cells(len(images))
    for view in views:
        for name in perturbations:
            started = time.perf_counter()
            rf.compute(images, cells, name, view, PROFILE)
            print(f"{name}/{view} {time.perf_counter() - started:.0f} s", flush=True)


def classifier_split(y: np.ndarray, seed: int) -> np.ndarray:
    """bench/fewshot.py's training cells for K (goods first)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == 0), K, replace=False),
                           rng.choice(np.flatnonzero(y == 1), K, replace=False)])


def anomaly_goods(y: np.ndarray, seed: int) -> np.ndarray:
    """bench/anomaly.py's training goods for N."""
    return np.random.default_rng(seed).choice(np.flatnonzero(y == 0), N, replace=False)


def family(kind: str) -> str:
    """``classifier`` or ``anomaly``: the kinds that share training cells (and so a part locator)."""
    return kind.split("+")[0]


def locator(fam: str, seed: int, images: np.ndarray, y: np.ndarray) -> PartLocator:
    """The product's position correction for ``fam``'s models of ``seed``: fitted on their training goods."""
    goods = anomaly_goods(y, seed) if fam == "anomaly" else [i for i in classifier_split(y, seed) if y[i] == 0]
    return PartLocator.from_goods([rf.rgb(images[i]) for i in goods])


def corrected_view(fam: str, seed: int) -> str:
    return f"corrected-{fam}-seed{seed}"


def cache_corrected(images: np.ndarray, y: np.ndarray, seeds: list[int], perturbations: list[str]) -> None:
    """Fill the position-corrected feature cache on the subset: per seed, family and perturbation."""
    cells = subset(len(images))
    for seed in seeds:
        for fam in ("classifier", "anomaly"):
            located = locator(fam, seed, images, y)
            for name in perturbations:
                started = time.perf_counter()
                rf.compute_corrected(images, cells, name, located, f"{fam}-seed{seed}", PROFILE)
                print(f"{name}/{corrected_view(fam, seed)} {time.perf_counter() - started:.0f} s", flush=True)


def trained(kind: str, seed: int, images: np.ndarray, y: np.ndarray):
    """The product's model of ``kind`` for ``seed``, fitted once and kept on disk."""
    folder = MODELS / f"{kind}-seed{seed}"
    if kind.startswith("anomaly"):
        if not folder.is_dir():
            model = build("anomaly", profile=PROFILE, good_class="good", seed=seed, augment=kind.endswith("augment"))
            model.fit([rf.rgb(images[i]) for i in anomaly_goods(y, seed)])
            model.save(folder)
        return PatchCoreDetector.load(folder)
    if not folder.is_dir():
        cells = classifier_split(y, seed)
        model = build("classifier", profile=PROFILE, good_class="good", seed=seed, augment=kind.endswith("augment"))
        model.fit([rf.rgb(images[i]) for i in cells], ["good" if y[i] == 0 else "defective" for i in cells])
        model.save(folder)
    return FewShotClassifier.load(folder)


def scores(model, features: dict[str, torch.Tensor], rows: np.ndarray) -> np.ndarray:
    """The model's judge score of cached cells ``rows`` (positions in ``features``)."""
    out = []
    for start in range(0, len(rows), 64):
        index = torch.as_tensor(rows[start : start + 64])
        stages = [features[f"s{s}"][index].float() for s in rf.STAGES]
        with torch.inference_mode():
            if isinstance(model, FewShotClassifier):
                probabilities, _ = model.head_([None, None, None, *stages])
                good = model.classes_.index(model.good_class)
                out.append((1.0 - probabilities[:, good]).clamp(0, 1).numpy())
            else:
                raw = model.score_stages([stages])[0]
                out.append(np.clip(model.calibration_.normalise(raw), 0, 1))
    return np.concatenate(out).astype(np.float64)


def training_cells(kind: str, y: np.ndarray, seed: int) -> np.ndarray:
    return anomaly_goods(y, seed) if kind.startswith("anomaly") else classifier_split(y, seed)


def evaluate(images: np.ndarray, y: np.ndarray, seeds: list[int]) -> tuple[list[dict], list[dict]]:
    """Per (kind, TTA, cells, perturbation, seed): false rejects and AUC; per (kind, seed): the unperturbed
    figures on all remaining cells. ``cells`` is ``subset`` (TTA off) or ``tta`` (every TTA setting,
    off included, on ``tta_cells``); position correction (TTA ``corrected``) on the subset, each kind on its
    family's corrected features for the seed."""
    scopes = {"subset": subset(len(images)), "tta": tta_cells(len(images))}
    available = {(p, v): rf.load(p, v, PROFILE) for p in rf.PERTURBATIONS for v in rf.VIEWS}
    runs, full = [], []
    for seed in seeds:
        for kind in KINDS:
            model = trained(kind, seed, images, y)
            threshold = float(model.threshold_)
            left_out = training_cells(kind, y, seed)
            judged: dict[tuple[str, str], dict[int, float]] = {}
            corrected = {(p, CORRECTED): rf.load(p, corrected_view(family(kind), seed), PROFILE)
                         for p in rf.PERTURBATIONS}
            for key, features in {**available, **corrected}.items():
                if features is None:
                    continue
                cells = features["cells"].numpy()
                rows = np.flatnonzero(np.isin(cells, scopes["subset"]) & ~np.isin(cells, left_out))
                judged[key] = dict(zip(cells[rows].tolist(), scores(model, features, rows), strict=True))
            for tta, views in {**TTA, CORRECTED: (CORRECTED,)}.items():
                # a TTA on the whole subset where its views are cached there; correction on the subset only
                for scope in ("subset", "tta") if tta != CORRECTED else ("subset",):
                    test = np.setdiff1d(scopes[scope], left_out)
                    for p in rf.PERTURBATIONS:
                        if not all((p, v) in judged and all(c in judged[(p, v)] for c in test) for v in views):
                            continue
                        s = np.mean([[judged[(p, v)][c] for c in test] for v in views], axis=0)
                        runs.append({"kind": kind, "tta": tta, "cells": scope, "perturbation": p, "seed": seed,
                                     "false_reject": float(np.mean(s[y[test] == 0] > threshold)),
                                     "auc": float(roc_auc_score(y[test], s))})
            whole = available[("none", "id")]
            if whole is None or len(whole["cells"]) < len(images):
                continue  # the unperturbed cells are not all cached yet
            cells = whole["cells"].numpy()
            rows = np.flatnonzero(~np.isin(cells, left_out))
            s = scores(model, whole, rows)
            truth = y[cells[rows]]
            full.append({"kind": kind, "seed": seed, "test_cells": len(rows), "auc": float(roc_auc_score(truth, s)),
                         "balanced_accuracy": float(balanced_accuracy_score(truth, s > threshold)),
                         "false_reject": float(np.mean(s[truth == 0] > threshold))})
            print(json.dumps({"seed": seed, **full[-1]}), flush=True)
    return runs, full


def summarise(runs: list[dict]) -> list[dict]:
    """Per (kind, TTA, cells, perturbation): mean false-reject rate and AUC over the seeds with spreads, and
    the ratio / drop against the same kind, TTA and cells unperturbed."""
    rows = []
    for kind, tta, scope in [(k, t, c) for k in KINDS for t in SETTINGS for c in ("subset", "tta")]:
        key = (kind, tta, scope)
        base = [r for r in runs if (r["kind"], r["tta"], r["cells"], r["perturbation"]) == (*key, "none")]
        if not base:
            continue
        base_fr = statistics.mean(r["false_reject"] for r in base)
        base_auc = {r["seed"]: r["auc"] for r in base}
        for p in rf.PERTURBATIONS:
            mine = [r for r in runs if (r["kind"], r["tta"], r["cells"], r["perturbation"]) == (*key, p)]
            if not mine:
                continue
            fr = [r["false_reject"] for r in mine]
            drops = [base_auc[r["seed"]] - r["auc"] for r in mine]
            ratio = statistics.mean(fr) / base_fr if base_fr > 0 else float("inf")
            rows.append({"kind": kind, "tta": tta, "cells": scope, "perturbation": p, "seeds": len(mine),
                         "false_reject": round(statistics.mean(fr), 4),
                         "false_reject_range": [round(min(fr), 4), round(max(fr), 4)],
                         "fr_ratio": round(ratio, 3), "auc": round(statistics.mean(r["auc"] for r in mine), 4),
                         "auc_drop": round(statistics.mean(drops), 4),
                         "auc_drop_median": round(statistics.median(drops), 4),
                         "auc_drop_range": [round(min(drops), 4), round(max(drops), 4)],
                         "fr_met": ratio <= MUST_FR, "auc_met": statistics.mean(drops) <= MUST_AUC})
    return rows


def tta_ms(images: np.ndarray, y: np.ndarray, repeats: int = 15) -> dict[str, float]:
    """Median ms of ``models.tta.judge_views`` on one cell (batch 1, map included) for each variant."""
    model = trained("classifier+augment", 0, images, y)
    cell = rf.rgb(images[0])
    out = {}
    for name, variants in (("off", ()), ("mirror", ("mirror",)), ("shift", ("shift",)), ("light", ("light",))):
        times = []
        for _ in range(repeats + 2):
            started = time.perf_counter()
            judge_views(model, [cell], variants)
            times.append((time.perf_counter() - started) * 1000)
        out[name] = round(statistics.median(times[2:]), 1)
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| model | TTA | cells | perturbation | goods false-reject (range) | x unperturbed | AUC "
             "| AUC drop (range) | met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "yes" if r["fr_met"] and r["auc_met"] else ("FR" if not r["fr_met"] else "") + \
            (" AUC" if not r["auc_met"] else "")
        lines.append(f"| {r['kind']} | {r['tta']} | {r['cells']} | {r['perturbation']} | {r['false_reject']:.1%} "
                     f"({r['false_reject_range'][0]:.1%}-{r['false_reject_range'][1]:.1%}) | {r['fr_ratio']:.2f} "
                     f"| {r['auc']:.3f} | {r['auc_drop']:+.3f} ({r['auc_drop_range'][0]:+.3f} to "
                     f"{r['auc_drop_range'][1]:+.3f}) | {'' if r['perturbation'] == 'none' else met} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument("--cache", action="store_true", help="only fill the feature cache")
    parser.add_argument("--perturbations", default=",".join(rf.PERTURBATIONS))
    parser.add_argument("--views", default="id", help="views to cache (with --cache)")
    parser.add_argument("--all-cells", action="store_true", help="cache every cell, not the subset (with --cache)")
    parser.add_argument("--cache-corrected", action="store_true",
                        help="only fill the position-corrected feature cache (subset, --seeds, --perturbations)")
    parser.add_argument("--train", action="store_true", help="only train (and keep) the seeds' models")
    parser.add_argument("--no-timing", action="store_true", help="skip the TTA milliseconds")
    args = parser.parse_args()
    images, y = load_elpv()
    if args.cache:
        cache_features(images, args.perturbations.split(","), args.views.split(","), args.all_cells)
        return
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.cache_corrected:
        cache_corrected(images, y, seeds, args.perturbations.split(","))
        return
    if args.train:
        for seed in seeds:
            for kind in KINDS:
                trained(kind, seed, images, y)
                print(f"trained {kind} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
        return
    runs, full = evaluate(images, y, seeds)
    rows = summarise(runs)
    for row in rows:
        print(json.dumps(row))
    print()
    print(markdown(rows))
    accuracy = {}
    for kind in KINDS:
        mine = [f for f in full if f["kind"] == kind]
        if not mine:
            continue
        accuracy[kind] = {key: {"mean": round(statistics.mean(f[key] for f in mine), 4),
                                "std": round(statistics.stdev(f[key] for f in mine), 4) if len(mine) > 1 else 0.0}
                          for key in ("auc", "balanced_accuracy", "false_reject")}
    floors_met = {kind: all(accuracy[kind][key]["mean"] >= floor for key, floor in
                            FLOORS[kind.split("+")[0]].items()) for kind in accuracy}
    ms = {} if args.no_timing else tta_ms(images, y)
    print(f"\nUnperturbed, all remaining cells: {json.dumps(accuracy)}\nTTA ms per cell (batch 1): {json.dumps(ms)}")
    perturbed = [r for r in rows if r["perturbation"] != "none"]
    print(json.dumps({"bench": "robustness", "seeds": seeds, "subset": SUBSET, "profile": PROFILE,
                      "accuracy_all_cells": accuracy, "accuracy_floors_met": floors_met, "tta_ms": ms,
                      "musts": {f"{r['kind']}|{r['tta']}|{r['cells']}|{r['perturbation']}": r["fr_met"] and r["auc_met"]
                                for r in perturbed},
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
