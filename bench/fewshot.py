"""Few-shot classification benchmark on ELPV (protocol: /work/shared/GUIDE.md, section 3).

For each profile the frozen backbone's activations of all 2,624 cells are computed once with the
product's own ``extract_activations``; for each seed and K the product's classifier
(``models.registry.build("classifier", ...)``, the object ``python -m core train`` fits) is fitted on the
K + K training cells' activations with ``fit_activations`` (the code ``fit`` runs after extracting) and
decides every other cell with its own calibrated threshold and band through the engine's
``core.inspect.decision.decide`` (score = 1 - P(good), as the classifier's ``judge`` gives it).
Baselines on the same run: logistic regression and kNN on the frozen pooled (1280-d head)
features of the same backbone. Training seconds, peak memory and inference ms come from the CLI
itself (``python -m core train`` / ``predict``) on 20 + 20 cells in a scratch studio.

    flock /tmp/studio-cpu.lock .venv/bin/python bench/fewshot.py [--profiles fast ...] [--seeds 5]

Prints one JSON object per (profile, K), then a Markdown table, and rewrites its section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.inspect.decision import decide  # noqa: E402
from models.classifier.estimator import Activations, extract_activations  # noqa: E402
from models.registry import build  # noqa: E402

METHOD = "classifier"  # the product's few-shot method in the registry

SECTION = "## Few-shot classification (bench/fewshot.py)"
HEAD_DIMS = 1280  # the last block of the pooled vector is the globally pooled 1280-channel head
GOOD, DEFECT = "good", "defective"


def load_elpv() -> tuple[list[np.ndarray], np.ndarray]:
    """RGB cells and binary truth (defective if defect probability >= 0.5), both module types."""
    from elpv_dataset.utils import load_dataset

    images, probability, _ = load_dataset()
    return [np.repeat(image[:, :, None], 3, axis=2) for image in images], probability >= 0.5


def split(is_defect: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train = np.concatenate([rng.choice(np.flatnonzero(~is_defect), k, replace=False),
                            rng.choice(np.flatnonzero(is_defect), k, replace=False)])
    return train, np.setdiff1d(np.arange(len(is_defect)), train)


def metrics(truth: np.ndarray, score: np.ndarray, decided_defect: np.ndarray) -> dict[str, float]:
    return {"balanced_accuracy": float(balanced_accuracy_score(truth, decided_defect)),
            "auc": float(roc_auc_score(truth, score)), "f1": float(f1_score(truth, decided_defect))}


def run_product(activations: Activations, is_defect: np.ndarray, train: np.ndarray, test: np.ndarray,
                profile: str, seed: int) -> dict[str, float]:
    labels = [DEFECT if d else GOOD for d in is_defect[train]]
    started = time.perf_counter()
    model = build(METHOD, profile=profile, good_class=GOOD, seed=seed).fit_activations(activations.take(train), labels)
    fit_seconds = time.perf_counter() - started
    probabilities = model.predict_proba_activations(activations.take(test))
    good = list(model.classes_).index(GOOD)
    scores = [min(1.0, max(0.0, 1.0 - float(p[good]))) for p in probabilities]  # the classifier's judge score
    verdicts = [decide(score, GOOD, DEFECT, model.threshold_, 0.0) for score in scores]
    banded = [decide(score, GOOD, DEFECT, model.threshold_, model.review_band_) for score in scores]
    score = np.array([v.score for v in verdicts])
    decided = np.array([v.decision == "fail" for v in verdicts])
    result = metrics(is_defect[test], score, decided)
    outside = np.array([v.decision != "review" for v in banded])
    result["review_rate"] = float(1 - outside.mean())
    result["accuracy_outside_review"] = float(np.mean(decided[outside] == is_defect[test][outside]))
    result["fit_seconds_cached"] = fit_seconds
    result["cv_balanced_accuracy"] = model.validation_["balanced_accuracy"]
    return result


def run_baselines(pooled: np.ndarray, is_defect: np.ndarray, train: np.ndarray,
                  test: np.ndarray) -> dict[str, dict[str, float]]:
    """Logistic regression (the studio's former head) and cosine kNN on the frozen head features."""
    x_train, x_test, y = pooled[train], pooled[test], is_defect[train]
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    regression = LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced").fit((x_train - mean) / std, y)
    p_lr = regression.predict_proba((x_test - mean) / std)[:, 1]
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    knn = KNeighborsClassifier(n_neighbors=5, weights="distance").fit(unit(x_train), y)
    p_knn = knn.predict_proba(unit(x_test))[:, 1]
    truth = is_defect[test]
    return {"logreg": metrics(truth, p_lr, p_lr > 0.5), "knn": metrics(truth, p_knn, p_knn > 0.5)}


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in runs[0]:
        values = np.array([r[key] for r in runs])
        out[key] = round(float(values.mean()), 4)
        out[f"{key}_std"] = round(float(values.std()), 4)
    return out


def _cli(args: list[str], data_dir: Path) -> str:
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout


def product_timing(images: list[np.ndarray], is_defect: np.ndarray, profile: str, repeats: int) -> dict[str, float]:
    """``python -m core train`` on 20 + 20 cells (median seconds it reports, peak RSS of the
    process) and ``python -m core predict`` at batch 1 (median ms per image it reports)."""
    train, test = split(is_defect, 20, seed=1000)
    with tempfile.TemporaryDirectory() as scratch:
        folder, data_dir = Path(scratch) / "cells", Path(scratch) / "data"
        for i in train:
            label = DEFECT if is_defect[i] else GOOD
            (folder / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i][:, :, 0]).save(folder / label / f"cell_{i:04d}.png")
        probes = []
        for i in test[:: len(test) // 30][:30]:
            probes.append(str(Path(scratch) / f"probe_{i:04d}.png"))
            Image.fromarray(images[i][:, :, 0]).save(probes[-1])
        _cli(["tools", "create", "cells", "--classes", f"{GOOD},{DEFECT}"], data_dir)
        _cli(["samples", "import", str(folder), "--tool", "cells"], data_dir)
        seconds, peaks = [], []
        for repeat in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            out = _cli(["train", "--tool", "cells", "--profile", profile, "--seed", str(repeat)], data_dir)
            seconds.append(json.loads(out.strip().splitlines()[-1])["seconds"])
            peaks.append(max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
        lines = _cli(["predict", "--tool", "cells", "--no-record", *probes], data_dir).strip().splitlines()
        ms = [json.loads(line)["ms"] for line in lines][1:]  # the first call also loads the model
    return {"train_seconds_40_median": float(np.median(seconds)), "train_peak_rss_mb": max(peaks) / 1024,
            "predict_ms_median": float(np.median(ms))}


def heatmap_overhead(images: list[np.ndarray], is_defect: np.ndarray, profile: str) -> dict[str, float]:
    """Median ms at batch 1: preprocessing + backbone forward alone vs probabilities + heatmap (same forward); their
    difference is the post-backbone cost (heads, fusion, heatmap) that the live pipeline pays per crop."""
    from models.backbones.registry import get_backbone
    from models.classifier.estimator import network_input
    from models.profiles import get_profile

    train, test = split(is_defect, 20, seed=2000)
    labels = [DEFECT if d else GOOD for d in is_defect[train]]
    model = build(METHOD, profile=profile, good_class=GOOD, seed=0).fit([images[i] for i in train], labels)
    spec = get_profile(profile)
    backbone = get_backbone(spec.backbone)
    forward, full = [], []
    for i in test[:40]:
        with torch.inference_mode():
            started = time.perf_counter()
            # the model's own input and the stages it reads
            backbone.forward_stages(network_input([images[i]], spec.input_size, model.standardise),
                                    upto=model.head_.last_stage)
            forward.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.predict_proba_and_heatmap([images[i]])
        full.append(time.perf_counter() - started)
    return {"forward_ms": 1000 * float(np.median(forward)), "with_heatmap_ms": 1000 * float(np.median(full)),
            "heatmap_overhead_ms": 1000 * float(np.median(full) - np.median(forward))}


def _pm(summary: dict[str, float], key: str) -> str:
    return f"{summary[key]:.3f} ± {summary[key + '_std']:.3f}"


def markdown(rows: list[dict]) -> str:
    lines = ["| profile | K | seeds | test cells | product bal. acc. | product AUC | product F1 | logreg bal. acc. | "
             "logreg AUC | logreg F1 | kNN bal. acc. | kNN AUC | kNN F1 | review share | acc. outside review |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        p, lr, kn = r["product"], r["logreg"], r["knn"]
        lines.append(
            f"| {r['profile']} | {r['K']} | {r['seeds']} | {r['n_test']} | {_pm(p, 'balanced_accuracy')} | "
            f"{_pm(p, 'auc')} | {_pm(p, 'f1')} | {_pm(lr, 'balanced_accuracy')} | {_pm(lr, 'auc')} | {_pm(lr, 'f1')} | "
            f"{_pm(kn, 'balanced_accuracy')} | {_pm(kn, 'auc')} | {_pm(kn, 'f1')} | {p['review_rate']:.2f} | "
            f"{p['accuracy_outside_review']:.3f} |")
    return "\n".join(lines)


def merge_runs(rows: list[dict], timings: dict[str, dict], command: str, part: str) -> dict:
    """This run's profiles replace the same profiles' figures in bench/fewshot.json (others kept);
    ``part`` ``accuracy`` keeps a profile's stored timing, ``timing`` its stored rows."""
    store = ROOT / "bench" / "fewshot.json"
    saved = json.loads(store.read_text()) if store.exists() else {"profiles": {}}
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}, torch {torch.__version__}"
    for profile, timing in timings.items():
        entry = saved["profiles"].setdefault(profile, {"rows": [], "timing": {}, "command": "", "machine": machine})
        if part != "timing":
            entry.update(rows=[r for r in rows if r["profile"] == profile], command=command, machine=machine)
        if part != "accuracy":
            entry.update(timing=timing, timing_command=command)
    store.write_text(json.dumps(saved, indent=1) + "\n")
    return saved


def write_results(saved: dict, seeds: int) -> None:
    order = [p for p in ("fast", "balanced", "accurate") if p in saved["profiles"]]
    entries = [saved["profiles"][p] for p in order]
    table = markdown([row for entry in entries for row in entry["rows"]])
    timings = {p: saved["profiles"][p]["timing"] for p in order}
    machine = "; ".join(sorted({e["machine"] for e in entries}))
    command = "; ".join(dict.fromkeys(c for e in entries for c in (e["command"], e.get("timing_command", "")) if c))
    timing_lines = [f"| {name} | {t['train_seconds_40_median']:.1f} | {t['train_peak_rss_mb']:.0f} | "
                    f"{t['predict_ms_median']:.1f} | {t['forward_ms']:.1f} | {t['heatmap_overhead_ms']:.1f} |"
                    for name, t in timings.items() if t]
    section = "\n".join([
        SECTION, "",
        f"ELPV, defective = probability >= 0.5, K good + K defective training cells, tested on all the other "
        f"cells, {seeds} seeds (mean ± std). Decisions use the product's threshold calibrated on the training "
        "cells (cross-validation), never one tuned on the test cells. Baselines: logistic regression and kNN "
        "(k = 5, cosine) on the frozen pooled head features of the same backbone, same splits.", "",
        f"Machine: {machine}.  ", f"Command: `{command}`", "",
        table, "",
        "Training 40 cells with `python -m core train` (median seconds it reports, features and calibration "
        "included; peak RSS of that process), `python -m core predict` ms per image at batch 1 (median, "
        "decoding included), and the backbone forward alone vs the extra cost of probabilities + heatmap:", "",
        ("| profile | train 40 s | train peak RSS MB | predict ms | forward ms "
         "| post-backbone (heads + fusion + heatmap) ms |"),
        "| --- | --- | --- | --- | --- | --- |", *timing_lines, ""])
    results = ROOT / "bench" / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    if SECTION in text:
        before, _, after = text.partition(SECTION)
        rest = after.find("\n## ")
        text = before + section + (after[rest + 1 :] if rest >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["fast", "balanced", "accurate"])
    parser.add_argument("--ks", nargs="+", type=int, default=[10, 20, 30])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--part", choices=["all", "accuracy", "timing"], default="all",
                        help="accuracy protocol only (may run niced, unlocked), timings only (run under the "
                             "CPU lock), or both")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite bench/RESULTS.md")
    parser.add_argument("--cells", type=int, help="a random subset of this many cells (smoke runs only)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    images, is_defect = load_elpv()
    if args.cells:
        keep = np.sort(np.random.default_rng(0).choice(len(images), args.cells, replace=False))
        images, is_defect = [images[i] for i in keep], is_defect[keep]
    rows, timings = [], {}
    for profile in args.profiles:
        if args.part != "timing":
            started = time.perf_counter()
            activations = extract_activations(profile, images)
            print(f"# {profile}: activations of {len(images)} cells in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
            pooled = activations.pooled[:, -HEAD_DIMS:].numpy()
        for k in args.ks if args.part != "timing" else []:
            product, logreg, knn = [], [], []
            for seed in range(args.seeds):
                train, test = split(is_defect, k, seed)
                product.append(run_product(activations, is_defect, train, test, profile, seed))
                baselines = run_baselines(pooled, is_defect, train, test)
                logreg.append(baselines["logreg"])
                knn.append(baselines["knn"])
            row = {"profile": profile, "K": k, "seeds": args.seeds, "n_test": int(len(is_defect) - 2 * k),
                   "product": summarise(product), "logreg": summarise(logreg), "knn": summarise(knn)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        timings[profile] = {} if args.part == "accuracy" else {
            **heatmap_overhead(images, is_defect, profile),
            **product_timing(images, is_defect, profile, args.timing_repeats)}
        print(json.dumps({"profile": profile, **{k: round(v, 2) for k, v in timings[profile].items()}}), flush=True)
    print(markdown(rows))
    if not args.no_write:
        command = "flock /tmp/studio-cpu.lock .venv/bin/python bench/fewshot.py " + " ".join(sys.argv[1:])
        write_results(merge_runs(rows, timings, command.strip(), args.part), args.seeds)


if __name__ == "__main__":
    main()
