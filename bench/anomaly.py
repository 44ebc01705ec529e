"""Benchmark of the anomaly model on ELPV (protocol: /work/shared/GUIDE.md section 3, issue 5).

For N in {10, 20, 50} good cells and each seed: train through ``core.training.train(method="anomaly")``
(the service ``python -m core train --method anomaly`` calls) in a temporary studio, load the model the
way ``predict`` does (``core.inspect.models.load_tool_models``), score every remaining cell; defective means
defect probability >= 0.5. Baseline in the same run: the registry's ``knn`` method (``models/knn``,
fitted on the same goods): distance to the nearest training good in the pooled head features of the
same backbone (k = 1, intensity-standardised input like the anomaly model's). Also: ms to score one image with its
full-resolution map through the engine (``core.inspect.engine.inspect``, batch 1, median), training
seconds, memory bank MB, and the cross-check (the registry's classifier trained on N goods + N defectives
beside the anomaly model, each deciding with its own calibrated threshold and band through
``core.inspect.decision.decide``, combined by ``combine`` as the engine does): share of test cells sent
to review and accuracy of the automatic pass / fail decisions.

Backbone work is cached once per cell (the stage outputs of each view the detector scores and the
kNN method's pooled features), then fed to the detector's own ``score_stages``; everything after the backbone is the
product's code. Prints one JSON object per N and a Markdown table. Accuracy runs niced, timing runs
short and on a quiet machine (bench/quiet.sh takes the CPU lock and pauses niced jobs):

    nice -n 19 .venv/bin/python bench/anomaly.py [--seeds 5] [--max-test 0] [--profile balanced]
    bench/quiet.sh .venv/bin/python bench/anomaly.py --timing-only [--profile balanced]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

# isort: split

from core.audit import SYSTEM
from core.config import Settings
from core.inspect.decision import combine, decide
from core.inspect.engine import inspect
from core.inspect.models import LoadedModel, ToolModels, load_tool_models
from core.samples import Candidate, add_images
from core.studio import open_studio
from core.tools import create_tool
from core.training import train
from models.classifier.estimator import extract_activations
from models.profiles import DEFAULT_PROFILE
from models.registry import build

TOOL = "cells"
BATCH = 16
ANOMALY, CLASSIFIER = "anomaly", "classifier"  # registry names


def served(studio) -> tuple[ToolModels, LoadedModel]:
    """The tool's models as ``predict`` loads them, and its anomaly model with the threshold and band it
    decides with."""
    models = load_tool_models(studio, TOOL)
    return models, next(m for m in models.models if m.method == ANOMALY)


def load_elpv() -> tuple[np.ndarray, np.ndarray]:
    from elpv_dataset.utils import load_dataset

    images, probability, _ = load_dataset()
    return images, (probability >= 0.5).astype(int)


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def png(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")
    return buffer.getvalue()


def knn_baseline(profile: str, seed: int = 0):
    """The kNN method of the registry, with the product's recipe (the baseline)."""
    return build("knn", profile=profile, good_class="good", seed=seed)


def backbone_cache(images: np.ndarray, indices: np.ndarray, detector) -> tuple[list[list[torch.Tensor]], torch.Tensor]:
    """The detector's stage outputs of each view (its own preprocessing and test-time flip) and the
    kNN baseline's pooled features of the cells ``indices``."""
    views: list[list[list[torch.Tensor]]] | None = None
    pooled = []
    for start in range(0, len(indices), BATCH):
        chunk = [rgb(images[i]) for i in indices[start : start + BATCH]]
        outputs = detector.view_stages(chunk)
        views = views or [[[] for _ in view] for view in outputs]
        for view, view_outputs in zip(views, outputs, strict=True):
            for slot, output in zip(view, view_outputs, strict=True):
                slot.append(output)
        pooled.append(knn_baseline(detector.profile).features(chunk))
    assert views is not None
    return [[torch.cat(s) for s in view] for view in views], torch.cat(pooled)


def open_bench_studio(folder: Path):
    """A throwaway studio (SQLite and image store) under ``folder``."""
    return open_studio(Settings(data_dir=folder / "data", database_url=f"sqlite:///{folder / 'data' / 'studio.db'}"))


def new_studio(folder: Path):
    """A throwaway studio with the tool ``TOOL`` (classes good, defective)."""
    studio = open_bench_studio(folder)
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    return studio


def import_cells(studio, images: np.ndarray, indices: np.ndarray, label: str) -> None:
    report = add_images(studio, TOOL, [Candidate(f"cell_{i:04d}.png", label, lambda i=i: png(images[i]))
                                       for i in indices], source="import", actor=SYSTEM)
    assert report.imported == len(indices), report.rejected


def run_one(images, y, n: int, seed: int, cache, position: dict[int, int], profile: str) -> dict:
    rng = np.random.default_rng(seed)
    goods = rng.choice(np.flatnonzero(y == 0), n, replace=False)
    defects = rng.choice(np.flatnonzero(y == 1), n, replace=False)  # only for the cross-check classifier
    views, pooled = cache
    cached = np.array(sorted(position))
    test = np.setdiff1d(cached, goods)
    rows = np.array([position[i] for i in test])
    with tempfile.TemporaryDirectory() as folder:
        studio = new_studio(Path(folder))
        import_cells(studio, images, goods, "good")
        result = train(studio, TOOL, method=ANOMALY, profile=profile, seed=seed, actor=SYSTEM)
        _, anomaly = served(studio)
        detector = anomaly.model
        studio.engine.dispose()
    raw = np.concatenate([detector.score_stages([[s[rows[i : i + 64]] for s in view] for view in views])[0]
                          for i in range(0, len(rows), 64)])
    scores = detector.calibration_.normalise(raw)
    baseline = knn_baseline(profile, seed)
    knn = baseline.fit_features(baseline.features([rgb(images[i]) for i in goods])).score_features(pooled[rows])
    out = {"auc": roc_auc_score(y[test], scores), "knn_auc": roc_auc_score(y[test], knn),
           "train_s": result.seconds, "bank_mb": detector.model_.memory_bank.numel() * 4 / 2**20,
           "good_flagged": float(np.mean(scores[y[test] == 0] > 0.5)),
           "defect_flagged": float(np.mean(scores[y[test] == 1] > 0.5))}
    cells_by_row = np.array(sorted(position, key=position.get))
    out.update(cross_check(images, y, goods, defects, test, rows, scores, cells_by_row, seed, profile, anomaly))
    return out


_classifier_activations: dict[bytes, object] = {}


def classifier_activations(images: np.ndarray, cells: np.ndarray, profile: str):
    """The product classifier's backbone activations of ``cells`` (in that order), computed once per run."""
    key = profile.encode() + cells.tobytes()
    if key not in _classifier_activations:
        _classifier_activations[key] = extract_activations(profile, [rgb(images[i]) for i in cells])
    return _classifier_activations[key]


def cross_check(images, y, goods, defects, test, rows, anomaly_scores, cells_by_row, seed: int, profile: str,
                anomaly: LoadedModel) -> dict:
    """Review share and accuracy of automatic decisions with the product's few-shot classifier
    (trained on N goods + N defects, its calibrated threshold and band) beside the anomaly model (the
    threshold and band it is served with), decided and combined as the engine does."""
    labels = ["good"] * len(goods) + ["defective"] * len(defects)
    train_cells = np.concatenate([goods, defects])
    classifier = build(CLASSIFIER, profile=profile, good_class="good", seed=seed).fit_activations(
        extract_activations(profile, [rgb(images[i]) for i in train_cells]), labels)
    keep = ~np.isin(test, defects)
    probabilities = classifier.predict_proba_activations(
        classifier_activations(images, cells_by_row, profile).take(rows[keep]))
    threshold, band = classifier.threshold_, classifier.review_band_
    good = list(classifier.classes_).index("good")
    decisions, classifier_decisions = [], []
    for p, a in zip(probabilities, anomaly_scores[keep], strict=True):
        c = decide(min(1.0, max(0.0, 1.0 - float(p[good]))), "good", "defective", threshold, band)
        v = decide(float(a), "good", None, anomaly.threshold, anomaly.review_band)
        decisions.append(combine([c, v]).decision)  # registry order: classifier, anomaly
        classifier_decisions.append(c.decision)
    truth = y[test][keep]

    def summary(made: list[str]) -> tuple[float, float]:
        made_array = np.array(made)
        auto = made_array != "review"
        correct = (made_array[auto] == "fail") == (truth[auto] == 1)
        return float(np.mean(~auto)), float(np.mean(correct)) if auto.any() else float("nan")

    review, accuracy = summary(decisions)
    classifier_review, classifier_accuracy = summary(classifier_decisions)
    return {"review_share": review, "auto_accuracy": accuracy,
            "classifier_review_share": classifier_review, "classifier_auto_accuracy": classifier_accuracy}


def timing(images: np.ndarray, y: np.ndarray, repeats: int, profile: str) -> tuple[float, float]:
    """Median ms for the engine to inspect one 300 x 300 cell with the anomaly model (its map and regions
    included; batch 1, ``core.inspect.engine.inspect``), and the seconds to train on 20 goods in a studio."""
    with tempfile.TemporaryDirectory() as folder:
        studio = new_studio(Path(folder))
        goods = np.random.default_rng(0).choice(np.flatnonzero(y == 0), 20, replace=False)
        import_cells(studio, images, goods, "good")
        train_s = train(studio, TOOL, method=ANOMALY, profile=profile, actor=SYSTEM).seconds
        models, _ = served(studio)
        studio.engine.dispose()
    cells = [rgb(images[i]) for i in range(repeats + 3)]
    times = []
    for cell in cells:
        started = time.perf_counter()
        inspection = inspect(models, cell, roi="whole")
        times.append((time.perf_counter() - started) * 1000)
        assert inspection.map is not None
    return statistics.median(times[3:]), train_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", default="10,20,50")
    parser.add_argument("--max-test", type=int, default=0,
                        help="score a fixed random subset of this many cells (0: all, the protocol)")
    parser.add_argument("--timing-repeats", type=int, default=30)
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help="backbone profile of the anomaly model, the baseline and the cross-check classifier")
    parser.add_argument("--timing-only", action="store_true",
                        help="only time scoring (batch 1, with the map) and training on 20 goods "
                             "(run it under quiet.sh)")
    args = parser.parse_args()
    torch.manual_seed(0)
    images, y = load_elpv()
    if args.timing_only:
        ms, train_s = timing(images, y, args.timing_repeats, args.profile)
        print(json.dumps({"profile": args.profile, "score_ms_batch1": round(ms, 1), "train_20_s": round(train_s, 2),
                          "torch_threads": torch.get_num_threads()}))
        return
    indices = np.arange(len(images))
    if args.max_test:
        indices = np.sort(np.random.default_rng(12345).choice(indices, args.max_test, replace=False))
    from models.anomaly import PatchCoreDetector

    probe = PatchCoreDetector(profile=args.profile)
    started = time.perf_counter()
    cache = backbone_cache(images, indices, probe)
    cache_s = time.perf_counter() - started
    position = {int(i): row for row, i in enumerate(indices)}
    ms, _ = timing(images, y, args.timing_repeats, args.profile)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        runs = [run_one(images, y, n, seed, cache, position, args.profile) for seed in range(args.seeds)]
        row = {"profile": args.profile, "n_good": n, "seeds": args.seeds, "test_cells": len(indices) - n}
        for key in runs[0]:
            values = [r[key] for r in runs]
            row[key] = round(statistics.mean(values), 4)
            row[key + "_std"] = round(statistics.stdev(values), 4) if len(values) > 1 else 0.0
        row["score_ms_batch1"] = round(ms, 1)
        row["backbone_cache_s"] = round(cache_s, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}\n")
    print("| N goods | image AUC | kNN baseline AUC | goods flagged | defects flagged | train s | bank MB "
          "| score ms (batch 1, map) | review share | auto accuracy | classifier alone: review / accuracy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n_good']} | {r['auc']:.3f} ± {r['auc_std']:.3f} | {r['knn_auc']:.3f} ± {r['knn_auc_std']:.3f} "
              f"| {r['good_flagged']:.1%} | {r['defect_flagged']:.1%} | {r['train_s']:.1f} | {r['bank_mb']:.1f} "
              f"| {r['score_ms_batch1']:.0f} | {r['review_share']:.1%} | {r['auto_accuracy']:.1%} "
              f"| {r['classifier_review_share']:.1%} / {r['classifier_auto_accuracy']:.1%} |")


if __name__ == "__main__":
    main()
