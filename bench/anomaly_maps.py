"""Pixel-level quality of the anomaly model's maps where the defect's pixels are known (issue 5).

Default source: synthetic defects with exact masks (``bench/synthetic_defects.py``: crack, inactive
area, bright / dark spot) drawn on real good ELPV cells (defect probability < 0.5) that were not used
for training. For each seed, the good cells are shuffled; the first N (N in ``--sizes``) train the
model through ``core.training.train(method="anomaly")`` (the service ``python -m core train --method
anomaly`` calls) in a temporary studio, loaded the way ``predict`` loads it
(``core.inspect.models.load_tool_models``); ``--defects`` other cells get one defect each (kinds in turn) and
``--clean`` more cells stay clean; each is scored with ``predict`` (map at image resolution).

``--mvtec DIR``: an MVTec AD category folder, imported with the product's importer
(``core.mvtec.import_mvtec``: train/good for training, test/ held out, masks stored with the
samples); the model trains on the train goods; each held-out sample and its mask are read back
from the studio's image store.

Metrics (``models/anomaly/metrics.py``): pixel ROC AUC over all pixels of the scored images, PRO up
to a false-positive rate of 0.3 (Bergmann et al. 2021), image ROC AUC defective vs clean, each also
per defect kind (that kind's images plus the clean ones), and ms per image of ``predict`` (batch 1,
map and regions included). Prints one JSON object per configuration and Markdown tables:

    nice -n 19 .venv/bin/python bench/anomaly_maps.py [--seeds 5] [--sizes 10,20,50] [--profile balanced]
    nice -n 19 .venv/bin/python bench/anomaly_maps.py --mvtec mvtec/bottle [--profile balanced]
"""

from __future__ import annotations

import argparse
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
from sklearn.metrics import roc_auc_score

# isort: split

from bench.anomaly import TOOL, import_cells, new_studio, open_bench_studio, rgb, served
from bench.synthetic_defects import KINDS, draw_defect
from core.audit import SYSTEM
from core.images import decode_image
from core.mvtec import import_mvtec
from core.studio import Studio
from core.tools import create_tool, get_tool
from core.training import train
from models.anomaly.metrics import pixel_auroc, pro_score
from models.profiles import DEFAULT_PROFILE
from storage import repository as repo

GOOD = "good"


def score(detector, images: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, float]:
    """Maps ``(H, W)``, image scores ``(N,)`` and the median ms of ``predict`` on one image."""
    maps, scores, times = [], [], []
    for image in images:
        started = time.perf_counter()
        result = detector.predict([image])[0]
        times.append((time.perf_counter() - started) * 1000)
        maps.append(result.raw_map)  # the same ranking as ``map``, without its saturation at 1
        scores.append(result.raw_score)
    return maps, np.array(scores), statistics.median(times)


def evaluate(maps: list[np.ndarray], masks: list[np.ndarray], scores: np.ndarray, kinds: list[str]) -> dict:
    """Pixel AUROC, PRO and image AUROC over all images, then per defect kind (with the clean images);
    ``kinds[i]`` is GOOD for a clean image (its mask all False)."""
    kinds_array = np.array(kinds)
    clean = kinds_array == GOOD
    out: dict[str, float] = {}
    for kind in ["all", *sorted(set(kinds) - {GOOD})]:
        chosen = ~clean if kind == "all" else kinds_array == kind
        rows = np.flatnonzero(chosen | clean)
        suffix = "" if kind == "all" else f"_{kind}"
        out["pixel_auroc" + suffix] = pixel_auroc([maps[i] for i in rows], [masks[i] for i in rows])
        out["pro" + suffix] = pro_score([maps[i] for i in rows], [masks[i] for i in rows])
        out["image_auroc" + suffix] = (float(roc_auc_score(chosen[rows], scores[rows])) if clean.any()
                                       else float("nan"))
    return out


def synthetic_tests(images: np.ndarray, cells: np.ndarray, n_defects: int, seed: int
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """RGB test images, their masks and kinds: one defect on each of the first ``n_defects`` cells
    (kinds in turn), the other cells clean."""
    rng = np.random.default_rng([seed, 1])
    tests, masks, kinds = [], [], []
    for index, cell in enumerate(cells):
        if index < n_defects:
            kind = KINDS[index % len(KINDS)]
            image, mask = draw_defect(images[cell], kind, rng)
        else:
            kind, image, mask = GOOD, images[cell], np.zeros(images[cell].shape, bool)
        tests.append(rgb(image))
        masks.append(mask)
        kinds.append(kind)
    return tests, masks, kinds


def trained_on_cells(images: np.ndarray, cells: np.ndarray, profile: str, seed: int):
    """The product's anomaly model trained in a temporary studio on the good cells ``cells``."""
    with tempfile.TemporaryDirectory() as folder:
        studio = new_studio(Path(folder))
        import_cells(studio, images, cells, GOOD)
        train(studio, TOOL, method="anomaly", profile=profile, seed=seed, actor=SYSTEM)
        detector = served(studio)[1].model
        studio.engine.dispose()
    return detector


def run_synthetic(args: argparse.Namespace) -> list[dict]:
    from elpv_dataset.utils import load_dataset

    images, probability, _ = load_dataset()
    goods = np.flatnonzero(probability < 0.5)
    sizes = [int(s) for s in args.sizes.split(",")]
    runs: dict[int, list[dict]] = {n: [] for n in sizes}
    for seed in range(args.seeds):
        order = np.random.default_rng(seed).permutation(goods)
        held_out = order[max(sizes) : max(sizes) + args.defects + args.clean]  # never trained on
        tests, masks, kinds = synthetic_tests(images, held_out, args.defects, seed)
        for n in sizes:
            detector = trained_on_cells(images, order[:n], args.profile, seed)
            maps, scores, ms = score(detector, tests)
            runs[n].append({**evaluate(maps, masks, scores, kinds), "ms_per_image": ms})
            print(f"seed {seed}, N = {n}: {json.dumps(runs[n][-1])}", file=sys.stderr, flush=True)
    rows = []
    for n in sizes:
        row: dict = {"source": "synthetic", "profile": args.profile, "n_good": n, "seeds": args.seeds,
                     "defective": args.defects, "clean": args.clean}
        for key in runs[n][0]:
            values = [r[key] for r in runs[n]]
            row[key] = round(statistics.mean(values), 4)
            row[key + "_std"] = round(statistics.stdev(values), 4) if len(values) > 1 else 0.0
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def held_out_samples(studio: Studio, tool_name: str) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """Label, RGB image and mask ``(H, W)`` bool (None for a defect without a mask; all False for a
    good one) of each held-out sample, read from the studio's image store as core reads them."""
    tool = get_tool(studio, tool_name)
    with studio.transaction() as session:
        rows = [(s.label, s.image_key, s.mask_key) for s in repo.list_samples(session, tool.id)
                if s.split == "held_out"]
    samples = []
    for label, image_key, mask_key in reversed(rows):  # oldest first
        image = decode_image(studio.images.read(image_key)).rgb
        if mask_key:
            mask = decode_image(studio.images.read(mask_key)).rgb.max(axis=2) > 0
        else:
            mask = np.zeros(image.shape[:2], bool) if label == tool.good_class else None
        samples.append((GOOD if label == tool.good_class else label, image, mask))
    return samples


def run_mvtec(root: Path, profile: str, seed: int) -> dict:
    """Train on an MVTec AD category's train goods (imported by the product) and score its test images."""
    with tempfile.TemporaryDirectory() as folder:
        studio = open_bench_studio(Path(folder))
        create_tool(studio, TOOL, GOOD, actor=SYSTEM)
        report = import_mvtec(studio, TOOL, root, actor=SYSTEM)
        result = train(studio, TOOL, method="anomaly", profile=profile, seed=seed, actor=SYSTEM)
        detector = served(studio)[1].model
        samples = held_out_samples(studio, TOOL)
        studio.engine.dispose()
    masked = [s for s in samples if s[2] is not None]
    maps, scores, ms = score(detector, [image for _, image, _ in masked])
    row = {"source": "mvtec", "folder": str(root), "profile": profile, "seed": seed,
           "n_good": result.n_samples, "imported": report.imported, "rejected": len(report.rejected),
           "test_images": len(masked), "defects_without_mask": len(samples) - len(masked),
           **{k: round(v, 4) for k, v in evaluate(maps, [m for *_, m in masked], scores,
                                                  [kind for kind, *_ in masked]).items()},
           "ms_per_image": round(ms, 1)}
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> None:
    """Markdown tables: overall figures, then pixel AUROC / PRO / image AUROC per defect kind."""
    spread = "seeds" in rows[0]

    def cell(row: dict, key: str) -> str:
        return f"{row[key]:.3f} ± {row[key + '_std']:.3f}" if spread else f"{row[key]:.3f}"

    kinds = sorted(k[len("pro_"):] for k in rows[0] if k.startswith("pro_") and not k.endswith("_std"))
    print(f"\nMachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}\n")
    print("| N goods | pixel AUROC | PRO (FPR <= 0.3) | image AUROC | ms per image (predict, batch 1) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n_good']} | {cell(r, 'pixel_auroc')} | {cell(r, 'pro')} | {cell(r, 'image_auroc')} "
              f"| {r['ms_per_image']:.0f} |")
    print("\n| N goods | defect kind | pixel AUROC | PRO (FPR <= 0.3) | image AUROC |")
    print("|---|---|---|---|---|")
    for r in rows:
        for kind in kinds:
            print(f"| {r['n_good']} | {kind} | {cell(r, 'pixel_auroc_' + kind)} | {cell(r, 'pro_' + kind)} "
                  f"| {cell(r, 'image_auroc_' + kind)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", default="10,20,50", help="numbers of good training cells")
    parser.add_argument("--defects", type=int, default=99, help="synthetic defective cells per seed (kinds in turn)")
    parser.add_argument("--clean", type=int, default=100, help="clean held-out cells per seed")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="backbone profile of the anomaly model")
    parser.add_argument("--mvtec", type=Path, help="an MVTec AD category folder instead of synthetic defects")
    parser.add_argument("--seed", type=int, default=0, help="training seed with --mvtec")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = [run_mvtec(args.mvtec, args.profile, args.seed)] if args.mvtec else run_synthetic(args)
    table(rows)


if __name__ == "__main__":
    main()
