"""Review queue benchmark and active-learning loop demonstration.

1. Throughput: with ``--items`` (10,000) inspections queued (plus twice as many decided ones), the time
   from a tap to the next card's data: ``submit_review`` + ``next_card`` + ``queue_counts`` + reading the
   card's image, i.e. every data call the review page makes; median and 95th percentile over ``--taps``
   taps, on SQLite and (when its binaries are installed) a throwaway PostgreSQL. No browser.
2. Loop: ELPV cells (elpv-dataset; defective if probability >= 0.5). A fixed held-out set of ``--holdout``
   cells is never shown to the studio. Per seed: train v1 on 10 good + 10 defective cells; then per
   round, inspect ``--batch`` new cells with the active model (recorded as on the Live page), queue the
   uncertainty suggestions, let a simulated operator answer ``--budget`` cards from the queue with the
   ground truth, retrain into a candidate and promote it. Reported: held-out balanced accuracy per round,
   against a baseline that labels the same number of *random* cells of the same batches.
3. ``--simulate`` (issue 18): the same loop on cached backbone activations (the product's classifier,
   ``fit_activations``, and the engine's ``decide``), comparing which ``--budget`` cells of each batch the
   operator labels: random, today's queue order (review band, then closest to the threshold), pure
   uncertainty, k-center diversity, uncertainty shortlist + k-center, half random + half that, TypiClust,
   highest defect score first. ``--cache FILE`` keeps the activations between runs.

Run under the CPU lock: ``flock /tmp/studio-cpu.lock .venv/bin/python bench/review.py``. The last line
printed is one JSON object with ``next_card_ms``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from core.audit import SYSTEM, Actor  # noqa: E402
from core.auth.roles import Role
from core.config import Settings  # noqa: E402
from core.images import encode_png  # noqa: E402
from core.inspect.decision import decide  # noqa: E402
from core.inspect.models import load_tool_models  # noqa: E402
from core.inspect.recorder import RecordContext  # noqa: E402
from core.inspect.service import predict_image  # noqa: E402
from core.model_versions import promote, train_candidate  # noqa: E402
from core.reviews import Reviewer, next_card, queue_counts, queue_for_review, submit_review, suggest_for_review  # noqa: E402
from core.samples import Candidate, add_images  # noqa: E402
from core.studio import Studio, open_studio  # noqa: E402
from core.tool_settings import change_settings  # noqa: E402
from core.tools import create_tool  # noqa: E402
from core.training import train  # noqa: E402
from storage import repository as repo  # noqa: E402
from storage.tables import Inspection, utc_now  # noqa: E402

TOOL = "cells"
BENCH = Actor("bench", "bench", Role.ADMIN)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- 1. next card after a tap ---------------------------------------------------------------------
def fill_queue(studio: Studio, n_queued: int, pngs: list[bytes]) -> None:
    """``n_queued`` queued inspections (10 % disagreement, 60 % uncertain, 10 % degraded, 20 % audit) and
    ``2 * n_queued`` decided ones, spread over 30 days, images from real cells."""
    keys = [studio.images.put(png, "png")[0] for png in pngs]
    rng = random.Random(0)
    now = utc_now()
    with studio.transaction() as session:
        tool_id = repo.get_tool(session, TOOL).id
    disagree = {"classifier": {"version": 1, "decision": "pass", "label": "good", "score": 0.3, "threshold": 0.5},
                "anomaly": {"version": 2, "decision": "fail", "label": "anomaly", "score": 0.8, "threshold": 0.5}}
    rows = []
    for index in range(3 * n_queued):
        queued = index < n_queued
        kind = rng.random()
        score = rng.random()
        rows.append(dict(
            tool_id=tool_id, station="bench", created_at=now - timedelta(minutes=rng.randrange(30 * 24 * 60)),
            decision="review" if queued and kind < 0.7 else ("fail" if score > 0.5 else "pass"),
            label="good", score=score, scores={"good": 1 - score, "defective": score}, latency_ms=30.0,
            opinions=disagree if queued and kind < 0.1 else {}, degraded=queued and 0.7 <= kind < 0.8,
            image_key=keys[index % len(keys)] if queued or score > 0.5 else None, needs_review=queued))
    with studio.transaction() as session:
        for start in range(0, len(rows), 2000):
            session.execute(insert(Inspection), rows[start:start + 2000])


def time_taps(studio: Studio, taps: int) -> list[float]:
    """Milliseconds from a tap (verdict) to the next card's data, as the review page fetches it."""
    reviewer = Reviewer("bench", "bench", role=Role.OPERATOR)
    card = next_card(studio, reviewer, TOOL)
    times = []
    for _ in range(taps):
        started = time.perf_counter()
        submit_review(studio, card.inspection_id, "good", reviewer)
        card = next_card(studio, reviewer, TOOL)
        queue_counts(studio, TOOL)
        studio.images.read(card.image_key)
        times.append((time.perf_counter() - started) * 1000)
    return times


def throughput(url: str, data_dir: Path, n_queued: int, taps: int, pngs: list[bytes]) -> dict[str, float]:
    studio = open_studio(Settings(data_dir, url))
    try:
        create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
        change_settings(studio, TOOL, BENCH, {"holdout_share": 0.0})
        started = time.perf_counter()
        fill_queue(studio, n_queued, pngs)
        log(f"  filled {3 * n_queued} inspections in {time.perf_counter() - started:.1f} s")
        waiting = sum(queue_counts(studio, TOOL).values())
        times = time_taps(studio, taps)
        return {"queued": waiting, "median_ms": statistics.median(times),
                "p95_ms": float(np.percentile(times, 95)), "max_ms": max(times)}
    finally:
        studio.engine.dispose()


# --- 2. the loop ----------------------------------------------------------------------------------
def load_elpv() -> tuple[np.ndarray, np.ndarray]:
    from elpv_dataset.utils import load_dataset

    images, proba, _ = load_dataset()
    return images, (proba >= 0.5).astype(int)


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def held_out_accuracy(studio: Studio, activations: object, labels: np.ndarray) -> float:
    """Balanced accuracy of the active classifier on the held-out cells' cached activations, loaded as
    ``predict`` loads it and deciding as the engine does (score 1 - P(good), its threshold and band)."""
    from sklearn.metrics import balanced_accuracy_score

    served = load_tool_models(studio, TOOL)
    model = next(m for m in served.models if m.method == "classifier")
    classes = list(model.model.classes_)
    probabilities = model.model.predict_proba_activations(activations)
    predicted = []
    for row in probabilities:
        scores = dict(zip(classes, map(float, row), strict=True))
        defect = max((c for c in classes if c != served.good_class), key=scores.__getitem__)
        score = min(1.0, max(0.0, 1.0 - scores[served.good_class]))
        verdict = decide(score, served.good_class, defect, model.threshold, model.review_band)
        predicted.append(int(verdict.label != served.good_class))
    return float(balanced_accuracy_score(labels, predicted))


def import_cells(studio: Studio, images: np.ndarray, labels: np.ndarray, indices: list[int]) -> None:
    names = ("good", "defective")
    add_images(studio, TOOL, [Candidate(f"cell-{i}.png", names[labels[i]], lambda i=i: encode_png(rgb(images[i])))
                              for i in indices], source="import", actor=SYSTEM)


def run_loop(arm: str, seed: int, images: np.ndarray, labels: np.ndarray, pool: list[int], start: list[int],
             features: object, held_labels: np.ndarray, rounds: int, batch: int, budget: int,
             folder: Path) -> list[float]:
    """One arm of the loop: ``active`` (queue + uncertainty suggestions) or ``random`` labels."""
    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    try:
        create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
        change_settings(studio, TOOL, BENCH, {"holdout_share": 0.0, "audit_share": 0.05})
        import_cells(studio, images, labels, start)
        train(studio, TOOL, profile="fast", seed=seed, actor=SYSTEM)  # the profile of the held-out activations
        curve = [held_out_accuracy(studio, features, held_labels)]
        operator = Reviewer("operator", "bench-tablet", role=Role.OPERATOR)
        engineer = Actor("engineer", "bench", Role.ENGINEER)
        rng = random.Random(seed)
        truth: dict[int, str] = {}  # inspection id -> ground truth, kept across rounds (the queue is)
        for round_index in range(rounds):
            cells = pool[round_index * batch:(round_index + 1) * batch]
            if arm == "active":
                for i in cells:  # production: the active model inspects each cell and records it
                    result = predict_image(studio, TOOL, f"cell-{i}.png", encode_png(rgb(images[i])),
                                           context=RecordContext("line"), actor=SYSTEM)
                    truth[result.inspection_id] = ("good", "defective")[labels[i]]
                waiting = sum(queue_counts(studio, TOOL).values())
                if waiting < budget:
                    suggestions = suggest_for_review(studio, TOOL, limit=budget - waiting)
                    queue_for_review(studio, [s.inspection_id for s in suggestions], engineer)
                answered = 0
                while answered < budget and (card := next_card(studio, operator, TOOL)) is not None:
                    submit_review(studio, card.inspection_id, truth[card.inspection_id], operator)
                    answered += 1
            else:
                import_cells(studio, images, labels, rng.sample(cells, budget))
            candidate = train_candidate(studio, TOOL, engineer, profile="fast")
            promote(studio, TOOL, candidate.version_id, engineer)
            curve.append(held_out_accuracy(studio, features, held_labels))
            log(f"  seed {seed} {arm} round {round_index + 1}: {candidate.n_samples} samples, "
                f"held-out balanced accuracy {curve[-1]:.3f}")
        return curve
    finally:
        studio.engine.dispose()


def loop(seeds: int, rounds: int, batch: int, budget: int, n_holdout: int, workdir: Path) -> dict[str, object]:
    from models.classifier.estimator import extract_activations

    images, labels = load_elpv()
    order = np.random.default_rng(1234).permutation(len(images))
    held = order[:n_holdout]
    rest = [int(i) for i in order[n_holdout:]]
    started = time.perf_counter()
    features = extract_activations("fast", [rgb(images[i]) for i in held])  # the backbone once, not per round
    log(f"  held-out activations of {n_holdout} cells in {time.perf_counter() - started:.1f} s")
    curves: dict[str, list[list[float]]] = {"active": [], "random": []}
    for seed in range(seeds):
        rng = random.Random(seed)
        good = [i for i in rest if labels[i] == 0]
        bad = [i for i in rest if labels[i] == 1]
        start = rng.sample(good, 10) + rng.sample(bad, 10)
        pool = [i for i in rest if i not in set(start)]
        rng.shuffle(pool)
        for arm in curves:
            curves[arm].append(run_loop(arm, seed, images, labels, pool, start, features, labels[held], rounds,
                                        batch, budget, workdir / f"loop-{arm}-{seed}"))
    return {arm: {"mean": [round(float(np.mean(c)), 4) for c in zip(*runs, strict=True)],
                  "std": [round(float(np.std(c)), 4) for c in zip(*runs, strict=True)],
                  "runs": [[round(x, 4) for x in run] for run in runs]} for arm, runs in curves.items()}


# --- 3. which cells should the operator label? (issue 18) -----------------------------------------
def diversity_features(profile: str, images: list[np.ndarray]) -> np.ndarray:
    """Pooled backbone head features ``(N, 1280)`` of RGB uint8 images (intensity-standardised), unit length."""
    from models.backbones.registry import pooled_features
    from models.preprocess import standardise_intensity
    from models.profiles import get_profile

    features = pooled_features(get_profile(profile), [standardise_intensity(image) for image in images])
    features = features.numpy().astype(np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def farthest_first(candidates: np.ndarray, labelled: np.ndarray, budget: int) -> list[int]:
    """Greedy k-center (Sener & Savarese 2018): ``budget`` rows of ``candidates (N, D)``, each the one
    farthest from the ``labelled (L, D)`` rows and the earlier picks."""
    nearest = np.min(np.linalg.norm(candidates[:, None] - labelled[None], axis=2), axis=1)
    picked: list[int] = []
    for _ in range(min(budget, len(candidates))):
        best = int(np.argmax(nearest))
        picked.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[best], axis=1))
        nearest[picked] = -1.0
    return picked


def review_order(margins: np.ndarray, features: np.ndarray, labelled: np.ndarray, budget: int,
                 shortlist: int = 3) -> list[int]:
    """Uncertainty with diversity: k-center picks among the ``shortlist * budget`` smallest ``margins``."""
    candidates = np.argsort(margins, kind="stable")[: shortlist * budget]
    return [int(candidates[i]) for i in farthest_first(features[candidates], labelled, budget)]


def _typical(candidates: np.ndarray, labelled: np.ndarray, budget: int, seed: int) -> list[int]:
    """TypiClust (Hacohen et al. 2022): cluster labelled + candidates into ``len(labelled) + budget``
    clusters; from the largest clusters holding no labelled cell, the most typical candidate (highest
    inverse mean distance to its 20 nearest neighbours)."""
    from sklearn.cluster import KMeans

    everything = np.concatenate([labelled, candidates])
    clusters = KMeans(len(labelled) + budget, n_init=1, random_state=seed).fit_predict(everything)
    covered = set(clusters[: len(labelled)].tolist())
    distances = np.linalg.norm(candidates[:, None] - candidates[None], axis=2)
    typicality = 1.0 / (np.sort(distances, axis=1)[:, 1:21].mean(axis=1) + 1e-12)
    own = clusters[len(labelled):]
    sizes = np.bincount(own, minlength=clusters.max() + 1)
    picked: list[int] = []
    for cluster in np.argsort(-sizes):
        if len(picked) == budget:
            break
        members = np.flatnonzero(own == cluster)
        if cluster in covered or not len(members):
            continue
        picked.append(int(members[np.argmax(typicality[members])]))
    rest = [i for i in np.argsort(-typicality) if i not in set(picked)]
    return picked + [int(i) for i in rest[: budget - len(picked)]]


def choose(arm: str, scores: np.ndarray, decisions: list[str], threshold: float, features: np.ndarray,
           labelled: np.ndarray, budget: int, rng: np.random.Generator, seed: int) -> list[int]:
    """Which ``budget`` cells of a batch (model ``scores``, engine ``decisions``, pooled ``features``) one
    arm sends to the operator. ``queue``: today's order (review-band items, oldest first, then the
    uncertainty suggestions, closest to the threshold)."""
    n = len(scores)
    margin = np.abs(scores - threshold)
    if arm == "random":
        return rng.choice(n, budget, replace=False).tolist()
    if arm == "queue":
        band = [i for i in range(n) if decisions[i] == "review"]
        rest = [int(i) for i in np.argsort(margin) if decisions[i] != "review"]
        return (band + rest)[:budget]
    if arm == "uncertainty":
        return np.argsort(margin)[:budget].tolist()
    if arm == "diverse":
        return farthest_first(features, labelled, budget)
    if arm == "uncertain_diverse":  # k-center among the 3 x budget most uncertain
        return review_order(margin, features, labelled, budget)
    if arm == "half_random":  # half the budget at random (keeps the training set's class mix), half the order
        ordered = review_order(margin, features, labelled, budget // 2)
        rest = [i for i in rng.permutation(n).tolist() if i not in set(ordered)]
        return ordered + rest[: budget - len(ordered)]
    if arm == "typical":
        return _typical(features, labelled, budget, seed)
    if arm == "predicted_defective":  # the rare class first: highest defect score
        return np.argsort(-scores)[:budget].tolist()
    raise ValueError(arm)


ARMS = ("random", "queue", "uncertainty", "diverse", "uncertain_diverse", "half_random", "typical",
        "predicted_defective")


def cached_activations(images: np.ndarray, cache: Path | None):
    """The fast profile's classifier activations of every cell and the review order's features
    (``core.review_order.diversity_features``), kept in ``cache`` (safetensors) between runs."""
    import torch
    from safetensors.torch import load_file, save_file

    from models.classifier.estimator import Activations, extract_activations

    if cache is not None and cache.exists():
        tensors = load_file(cache)
        return Activations(tensors["pooled"], tensors["patches"]), tensors["diversity"].numpy().astype(np.float64)
    started = time.perf_counter()
    cells = [rgb(image) for image in images]
    activations = extract_activations("fast", cells)
    diversity = diversity_features("fast", cells)
    log(f"  activations of {len(images)} cells in {time.perf_counter() - started:.1f} s")
    if cache is not None:
        save_file({"pooled": activations.pooled.contiguous(), "patches": activations.patches.contiguous(),
                   "diversity": torch.from_numpy(diversity).float().contiguous()}, cache)
    return activations, diversity


def simulate(seeds: int, rounds: int, batch: int, budget: int, n_holdout: int, arms: tuple[str, ...],
             cache: Path | None = None) -> dict:
    """The loop on cached backbone activations: per round the product's classifier (``fit_activations``,
    fast profile) judges a batch of new cells (the engine's ``decide`` with its calibrated threshold and
    band), an arm picks ``budget`` of them for the operator (ground truth), and the classifier is refitted
    on everything labelled; held-out balanced accuracy after each round."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from models.registry import build

    images, labels = load_elpv()
    order = np.random.default_rng(1234).permutation(len(images))
    held, rest = order[:n_holdout], [int(i) for i in order[n_holdout:]]
    activations, pooled = cached_activations(images, cache)
    names = np.array(["good", "defective"])

    def fitted(cells: list[int], seed: int):
        return build("classifier", profile="fast", good_class="good", seed=seed).fit_activations(
            activations.take(cells), names[labels[cells]].tolist())

    def judged(model, cells) -> tuple[np.ndarray, list[str]]:
        good = list(model.classes_).index("good")
        scores = np.clip(1.0 - model.predict_proba_activations(activations.take(cells))[:, good], 0.0, 1.0)
        return scores, [decide(float(s), "good", "defective", model.threshold_, model.review_band_).decision
                        for s in scores]

    def accuracy(model) -> tuple[float, float]:
        """Held-out balanced accuracy at the model's threshold, and ROC AUC (threshold-free)."""
        scores, _ = judged(model, held)
        return (float(balanced_accuracy_score(labels[held], (scores > model.threshold_).astype(int))),
                float(roc_auc_score(labels[held], scores)))

    curves: dict[str, list[list[float]]] = {arm: [] for arm in arms}
    areas: dict[str, list[float]] = {arm: [] for arm in arms}  # held-out ROC AUC after the last round
    for seed in range(seeds):
        rng = random.Random(seed)
        start = (rng.sample([i for i in rest if labels[i] == 0], 10)
                 + rng.sample([i for i in rest if labels[i] == 1], 10))
        pool = [i for i in rest if i not in set(start)]
        rng.shuffle(pool)
        first = fitted(start, seed)
        for arm in arms:
            picker = np.random.default_rng(seed)
            labelled, model, curve = list(start), first, [accuracy(first)[0]]
            for round_index in range(rounds):
                cells = pool[round_index * batch:(round_index + 1) * batch]
                scores, decisions = judged(model, cells)
                picks = choose(arm, scores, decisions, model.threshold_, pooled[cells], pooled[labelled], budget,
                               picker, seed)
                labelled += [cells[i] for i in picks]
                model = fitted(labelled, seed)
                balanced, area = accuracy(model)
                curve.append(balanced)
            curves[arm].append(curve)
            areas[arm].append(area)
            log(f"  seed {seed} {arm}: " + " ".join(f"{a:.3f}" for a in curve)
                + f" AUC {areas[arm][-1]:.3f}"
                + f" ({int(labels[labelled].sum())} defective of {len(labelled)})")
    base = np.array(curves["random"])
    return {arm: {"mean": [round(float(np.mean(c)), 4) for c in zip(*runs, strict=True)],
                  "std": [round(float(np.std(c)), 4) for c in zip(*runs, strict=True)],
                  "gain_vs_random": round(float(np.mean(np.array(runs)[:, -1] - base[:, -1])), 4),
                  "gain_std": round(float(np.std(np.array(runs)[:, -1] - base[:, -1])), 4),
                  "final_auc": round(float(np.mean(areas[arm])), 4),
                  "final_auc_gain": round(float(np.mean(np.array(areas[arm]) - np.array(areas["random"]))), 4),
                  "final_auc_gain_std": round(float(np.std(np.array(areas[arm]) - np.array(areas["random"]))), 4),
                  "runs": [[round(x, 4) for x in run] for run in runs]} for arm, runs in curves.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000, help="queued inspections")
    parser.add_argument("--taps", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-loop", action="store_true")
    parser.add_argument("--no-throughput", action="store_true", help="only the loop")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=250, help="cells inspected per round")
    parser.add_argument("--budget", type=int, default=30, help="operator verdicts per round")
    parser.add_argument("--holdout", type=int, default=800, help="held-out cells")
    parser.add_argument("--simulate", action="store_true",
                        help="only the labelling orders compared on cached activations (issue 18)")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--cache", type=Path, help="safetensors file keeping the activations between runs")
    args = parser.parse_args()
    if args.simulate:
        results = simulate(args.seeds, args.rounds, args.batch, args.budget, args.holdout, tuple(args.arms.split(",")),
                           args.cache)
        print("| order | " + " | ".join(f"round {r}" for r in range(args.rounds + 1))
              + " | balanced-accuracy gain vs random (last round) | AUC last round (gain vs random) |")
        print("| --- |" + " --- |" * (args.rounds + 3))
        for arm, r in results.items():
            print(f"| {arm} | " + " | ".join(f"{m:.3f} ± {d:.3f}" for m, d in zip(r["mean"], r["std"], strict=True))
                  + f" | {r['gain_vs_random']:+.3f} ± {r['gain_std']:.3f} | {r['final_auc']:.3f} "
                  f"({r['final_auc_gain']:+.3f} ± {r['final_auc_gain_std']:.3f}) |")
        print(json.dumps({"simulate": {arm: {k: v for k, v in r.items() if k != "runs"} for arm, r in results.items()},
                          "seeds": args.seeds, "rounds": args.rounds, "batch": args.batch, "budget": args.budget}))
        return

    summary: dict[str, object] = {}
    images, _ = load_elpv()
    pngs = [encode_png(rgb(images[i])) for i in range(50)]
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        workdir = Path(tmp)
        if not args.no_throughput:
            log(f"throughput on SQLite, {args.items} queued")
            sqlite = throughput(f"sqlite:///{workdir / 'q' / 'studio.db'}", workdir / "q", args.items, args.taps, pngs)
            print(json.dumps({"backend": "sqlite", **{k: round(v, 2) for k, v in sqlite.items()}}), flush=True)
            summary.update(next_card_ms=round(sqlite["median_ms"], 2), next_card_p95_ms=round(sqlite["p95_ms"], 2),
                           queued=sqlite["queued"])
            if not args.no_postgres:
                from tests.postgres import running_postgres

                with running_postgres(log) as server:
                    if server is not None:
                        log(f"throughput on PostgreSQL, {args.items} queued")
                        pg = throughput(server.create_database("bench"), workdir / "pg", args.items, args.taps, pngs)
                if server is not None:
                    print(json.dumps({"backend": "postgresql", **{k: round(v, 2) for k, v in pg.items()}}), flush=True)
                    summary.update(next_card_ms_postgresql=round(pg["median_ms"], 2),
                                   next_card_p95_ms_postgresql=round(pg["p95_ms"], 2))
        if not args.no_loop:
            log(f"loop: {args.seeds} seeds x {args.rounds} rounds, {args.batch} cells / round, "
                f"{args.budget} verdicts / round")
            curves = loop(args.seeds, args.rounds, args.batch, args.budget, args.holdout, workdir)
            print("| round | labels added | active loop (queue + uncertainty) | random labels |", flush=True)
            print("| --- | --- | --- | --- |", flush=True)
            for r in range(args.rounds + 1):
                a, b = curves["active"], curves["random"]
                print(f"| {r} | {r * args.budget} | {a['mean'][r]:.3f} ± {a['std'][r]:.3f} | "
                      f"{b['mean'][r]:.3f} ± {b['std'][r]:.3f} |", flush=True)
            summary.update(loop_balanced_accuracy=curves["active"]["mean"],
                           loop_balanced_accuracy_std=curves["active"]["std"],
                           random_balanced_accuracy=curves["random"]["mean"], loop_runs=curves["active"]["runs"])
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
