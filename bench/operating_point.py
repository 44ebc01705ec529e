"""Operating points on ELPV (issue 18): promised vs realized escape, false-reject and review rates.

Protocol of bench/fewshot.py: for each seed, K = 20 good + 20 defective cells for training, every
other cell unseen. Backbone work is cached once per run (``--cache FILE`` keeps it between runs): the
classifier's activations (``extract_activations``, as bench/fewshot.py) and the anomaly model's stage
outputs (``view_stages``, as bench/anomaly.py). Per seed, the product's classifier is fitted with
``fit_activations`` and the anomaly model with ``fit`` on the 20 goods; the calibration scores are
what training stores (``core.operating_point.training_scores``); the operating point is chosen by
``core.operating_point.choose`` exactly as ``python -m core operating-point`` does, then applied to the
unseen cells' scores through the engine's rule (``core.operating_point.combine``).

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/operating_point.py [--seeds 5] [--seed-offset 0]

``--dump DIR`` keeps each seed's models' scores (``seed<N>.npz``); ``--reuse`` takes them from there
instead of fitting again, so a change of the rules is measured on the same scores in seconds. The
``adapted`` decision is the product's ``--adapt`` point, including its fail safe (the training-only
point when the models' own fitted shares disagree: ``adapted_refused`` lists those seeds).

Last stdout line: one JSON object (medians, spreads, musts).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fewshot import load_elpv, split  # noqa: E402
from core.inspect.decision import combine, decide  # noqa: E402
from core.operating_point.choose import Targets, choose  # noqa: E402
from core.operating_point.training_scores import calibration_scores  # noqa: E402
from models.classifier.estimator import Activations, extract_activations  # noqa: E402
from models.profiles import DEFAULT_PROFILE  # noqa: E402
from models.registry import build  # noqa: E402

SECTION = "## Operating points (bench/operating_point.py)"
GOOD, DEFECT = "good", "defective"
K = 20
MAX_REVIEW = 0.2
GOODS_ONLY_FR = 0.05
WINDOW = 200  # unlabelled unseen cells the adapted point is fitted to
ADAPT_SEED = 10_000
DECISIONS = ("adapted", "stacked", "vote", "classifier_only")
BATCH = 16


def backbone_cache(images: list[np.ndarray], profile: str, path: Path | None) -> tuple[Activations, list[torch.Tensor]]:
    """The classifier's activations and the anomaly model's stage outputs (one view: no test flip) of
    every cell, computed once (and kept in ``path`` when given)."""
    if path is not None and path.exists():
        stored = load_file(str(path))
        stages = [stored[k] for k in sorted(k for k in stored if k.startswith("stage"))]
        return Activations(stored["pooled"], stored["patches"]), stages
    activations = extract_activations(profile, images)
    probe = build("anomaly", profile=profile, good_class=GOOD)
    assert not probe.test_flip, "the cache holds one view"
    chunks: list[list[torch.Tensor]] = []
    for start in range(0, len(images), BATCH):
        chunks.append([s.cpu() for s in probe.view_stages(images[start : start + BATCH])[0]])
    stages = [torch.cat([c[i] for c in chunks]) for i in range(len(chunks[0]))]
    if path is not None:
        save_file({"pooled": activations.pooled.contiguous(), "patches": activations.patches.contiguous(),
                   **{f"stage{i}": s.contiguous() for i, s in enumerate(stages)}}, str(path))
    return activations, stages


def anomaly_scores(detector, stages: list[torch.Tensor], rows: np.ndarray) -> np.ndarray:
    """The detector's judge scores (normalised, clipped to [0, 1]) of the cached cells ``rows``."""
    raw = np.concatenate([detector.score_stages([[s[rows[i : i + 64]] for s in stages]])[0]
                          for i in range(0, len(rows), 64)])
    return np.clip(detector.calibration_.normalise(raw), 0.0, 1.0)


def realized(decisions: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Escape rate, false-reject rate and review share of decisions ``pass | fail | review``."""
    auto_d = truth & (decisions != "review")
    auto_g = ~truth & (decisions != "review")
    return {"escape": float(np.mean(decisions[auto_d] == "pass")) if auto_d.any() else 0.0,
            "false_reject": float(np.mean(decisions[auto_g] == "fail")) if auto_g.any() else 0.0,
            "review": float(np.mean(decisions == "review")),
            "review_good": float(np.mean(decisions[~truth] == "review")),
            "review_defect": float(np.mean(decisions[truth] == "review"))}


def hindsight(score: np.ndarray, truth: np.ndarray, max_review: float) -> dict[str, float]:
    """The best any pair of cut points could do on these parts, chosen with their labels: the smallest
    realized max(escape, false reject) with at most ``max_review`` of the parts sent to a person. A bound
    on every rule that sees the same ``score``, not a rule (cuts between tied scores count as possible)."""
    truth = np.asarray(truth, dtype=bool)[np.argsort(score, kind="stable")]
    n, n_defect = len(truth), int(truth.sum())
    below_d = np.concatenate([[0], np.cumsum(truth)])  # defectives among the i lowest scores
    below_g = np.arange(n + 1) - below_d
    passed = np.arange(n + 1)[:, None]  # the i lowest pass, the parts from j on fail, i <= j <= i + m
    failed_from = np.minimum(passed + np.arange(int(max_review * n) + 1)[None, :], n)
    d_pass, g_pass = below_d[passed], below_g[passed]
    d_fail, g_fail = n_defect - below_d[failed_from], (n - n_defect) - below_g[failed_from]
    escape = d_pass / np.maximum(d_pass + d_fail, 1)
    false_reject = g_fail / np.maximum(g_pass + g_fail, 1)
    worst = np.maximum(escape, false_reject)
    i, k = np.unravel_index(int(np.argmin(worst)), worst.shape)
    return {"max_escape_fr": float(worst[i, k]), "escape": float(escape[i, k]),
            "false_reject": float(false_reject[i, k]), "review": float((failed_from[i, k] - i) / n)}


def point_decisions(choice, scores: dict[str, np.ndarray]) -> np.ndarray:
    """The engine's rule with an operating point: the combined score between the cut points."""
    combined = 1 / (1 + np.exp(-choice.combination.logit(scores)))
    threshold, band = (choice.lo + choice.hi) / 2, (choice.hi - choice.lo) / 2
    return np.array([decide(float(s), GOOD, DEFECT, threshold, band).decision for s in combined])


def vote_decisions(clf_rule: np.ndarray, ano_rule: np.ndarray, clf: np.ndarray, ano: np.ndarray) -> np.ndarray:
    """Today's cross-check: each model by its calibrated threshold and band (``(threshold, band)``),
    combined by ``combine``."""
    return np.array([combine([decide(float(c), GOOD, DEFECT, float(clf_rule[0]), float(clf_rule[1])),
                              decide(float(a), GOOD, None, float(ano_rule[0]), float(ano_rule[1]))]).decision
                     for c, a in zip(clf, ano, strict=True)])


def fit_scores(images, is_defect, activations, stages, seed: int, profile: str) -> dict[str, np.ndarray]:
    """Both models fitted on the seed's 20 + 20 cells: their calibration scores (what training stores),
    their scores of every unseen cell and their own rules (``(threshold, band)``)."""
    train, test = split(is_defect, K, seed)
    labels = [DEFECT if d else GOOD for d in is_defect[train]]
    started = time.perf_counter()
    classifier = build("classifier", profile=profile, good_class=GOOD, seed=seed).fit_activations(
        activations.take(train), labels)
    good = list(classifier.classes_).index(GOOD)
    clf_test = np.clip(1 - classifier.predict_proba_activations(activations.take(test))[:, good], 0, 1)
    detector = build("anomaly", profile=profile, good_class=GOOD, seed=seed).fit(
        [images[i] for i in train], labels)
    ano_test = anomaly_scores(detector, stages, test)
    fit_s = time.perf_counter() - started
    calib_c = calibration_scores(classifier, labels, train.tolist(), lambda rows: [])
    calib_a = calibration_scores(detector, labels, train.tolist(),
                                 lambda rows: anomaly_scores(detector, stages, train[rows]).tolist())
    return {"cal_clf": np.array(calib_c["scores"]), "cal_ano": np.array(calib_a["scores"]),
            "cal_y": np.array(calib_c["defect"]), "test_clf": clf_test, "test_ano": ano_test,
            "test_y": is_defect[test], "clf_rule": np.array([classifier.threshold_, classifier.review_band_]),
            "ano_rule": np.array([detector.threshold_, detector.review_band_]), "fit_s": np.array(fit_s)}


def run_seed(scores: dict[str, np.ndarray], seed: int, max_review: float, window: int) -> dict:
    """Every decision rule on one seed's scores (``fit_scores``)."""
    truth_cal = np.asarray(scores["cal_y"], dtype=bool)
    calib = {"classifier": scores["cal_clf"], "anomaly": scores["cal_ano"]}
    truth = np.asarray(scores["test_y"], dtype=bool)
    clf_all, ano_all = scores["test_clf"], scores["test_ano"]
    out: dict = {"seed": seed, "window": window, "fit_s": round(float(scores["fit_s"]), 1)}
    # the first ``window`` unseen cells (seeded order) are the line's unlabelled adaptation window; every
    # rate below is measured on the other cells only
    order = np.random.default_rng(ADAPT_SEED + seed).permutation(len(truth))
    new, rest = order[:window], order[window:]
    truth = truth[rest]
    clf_test, ano_test = clf_all[rest], ano_all[rest]
    test_scores = {"classifier": clf_test, "anomaly": ano_test}
    started = time.perf_counter()
    choice = choose(calib, truth_cal, Targets(max_review, "minimax"))
    out["choose_s"] = round(time.perf_counter() - started, 2)
    out["stacked"] = {"promised": choice.promised.as_json(), "counts": choice.counts.as_json(),
                      "realized": realized(point_decisions(choice, test_scores), truth),
                      "weights": choice.combination.as_json(), "lo": choice.lo, "hi": choice.hi}
    if window:
        started = time.perf_counter()
        adapted = choose(calib, truth_cal, Targets(max_review, "minimax"),
                         new_scores={"classifier": clf_all[new], "anomaly": ano_all[new]})
        out["adapt_s"] = round(time.perf_counter() - started, 2)
        out["adapted"] = {"promised": adapted.promised.as_json(), "shift": adapted.adapted.as_json(),
                          "realized": realized(point_decisions(adapted, test_scores), truth),
                          "lo": adapted.lo, "hi": adapted.hi, "true_share": round(float(truth_new.mean()), 4)
                          if (truth_new := np.asarray(scores["test_y"], dtype=bool)[new]).size else None}
    out["hindsight"] = hindsight(choice.combination.logit(test_scores), truth, max_review)
    vote_cal = vote_decisions(scores["clf_rule"], scores["ano_rule"], calib["classifier"], calib["anomaly"])
    out["vote"] = {"promised": realized(vote_cal, truth_cal),
                   "realized": realized(vote_decisions(scores["clf_rule"], scores["ano_rule"], clf_test, ano_test),
                                        truth)}
    single = choose({"classifier": calib["classifier"]}, truth_cal, Targets(max_review, "minimax"))
    out["classifier_only"] = {"promised": single.promised.as_json(),
                              "realized": realized(point_decisions(single, {"classifier": clf_test}), truth)}
    goods = choose({"anomaly": calib["anomaly"][~truth_cal]}, np.zeros(int((~truth_cal).sum()), dtype=bool),
                   Targets(max_review, "max_false_reject", GOODS_ONLY_FR))
    goods_real = realized(point_decisions(goods, {"anomaly": ano_test}), truth)
    failed_good = float(np.mean(point_decisions(goods, {"anomaly": ano_test[~truth]}) == "fail"))
    out["goods_only"] = {"promised": goods.promised.as_json(), "realized": {**goods_real,
                                                                           "fail_per_good": failed_good}}
    return out


def median_spread(values: list[float]) -> dict[str, float]:
    array = np.array(values, dtype=np.float64)
    return {"median": round(float(np.median(array)), 4), "min": round(float(array.min()), 4),
            "max": round(float(array.max()), 4)}


def summarise(runs: list[dict]) -> dict:
    summary: dict = {}
    names = [name for name in DECISIONS if name in runs[0]]
    for name in names:
        rows = {}
        for rate in ("escape", "false_reject", "review"):
            promised = [r[name]["promised"][rate] for r in runs]
            real = [r[name]["realized"][rate] for r in runs]
            rows[rate] = {"promised": median_spread(promised), "realized": median_spread(real),
                          "gap": median_spread([abs(a - b) for a, b in zip(promised, real, strict=True)])}
        rows["max_escape_fr"] = median_spread([max(r[name]["realized"]["escape"], r[name]["realized"]["false_reject"])
                                              for r in runs])
        summary[name] = rows
    summary["goods_only"] = {"false_reject": median_spread([r["goods_only"]["realized"]["false_reject"] for r in runs]),
                             "fail_per_good": median_spread([r["goods_only"]["realized"]["fail_per_good"]
                                                             for r in runs]),
                             "review": median_spread([r["goods_only"]["realized"]["review"] for r in runs]),
                             "escape": median_spread([r["goods_only"]["realized"]["escape"] for r in runs])}
    summary["hindsight"] = {  # the best cut points on the combined score, chosen with the unseen labels
        "max_escape_fr": median_spread([r["hindsight"]["max_escape_fr"] for r in runs]),
        "seeds_le_22": sum(r["hindsight"]["max_escape_fr"] <= 0.22 for r in runs)}
    if "adapted" in runs[0]:  # the seeds whose adaptation the cross-check refused (training-only point)
        summary["adapted_refused"] = [r["seed"] for r in runs if not r["adapted"]["shift"].get("used", True)]
    goods = summary["goods_only"]["false_reject"]
    for name in ("adapted", "stacked"):  # on the line after adaptation; from the training images alone
        if name not in summary:
            continue
        rows = summary[name]
        for key, at in (("musts", "median"), ("musts_every_seed", "max")):
            summary.setdefault(key, {})[name] = {
                "review_le_25": rows["review"]["realized"][at] <= 0.25,
                "escape_within_5": rows["escape"]["gap"][at] <= 0.05,
                "false_reject_within_5": rows["false_reject"]["gap"][at] <= 0.05,
                "max_escape_fr_le_22": rows["max_escape_fr"][at] <= 0.22,
                "goods_only_fr_le_7": goods[at] <= 0.07}
        summary.setdefault("seeds_meeting", {})[name] = {  # per seed: how many seeds meet each must
            "review_le_25": sum(r[name]["realized"]["review"] <= 0.25 for r in runs),
            "escape_within_5": sum(abs(r[name]["promised"]["escape"] - r[name]["realized"]["escape"]) <= 0.05
                                   for r in runs),
            "false_reject_within_5": sum(abs(r[name]["promised"]["false_reject"]
                                             - r[name]["realized"]["false_reject"]) <= 0.05 for r in runs),
            "max_escape_fr_le_22": sum(max(r[name]["realized"]["escape"], r[name]["realized"]["false_reject"]) <= 0.22
                                       for r in runs),
            "goods_only_fr_le_7": sum(r["goods_only"]["realized"]["false_reject"] <= 0.07 for r in runs),
            "seeds": len(runs)}
        summary.setdefault("ranges_hold", {})[name] = {  # seeds whose realized rate is inside the promised range
            rate: sum(r[name]["promised"][f"{rate}_range"][0] <= r[name]["realized"][rate]
                      <= r[name]["promised"][f"{rate}_range"][1] for r in runs) for rate in ("escape", "false_reject")}
    return summary


def table(runs: list[dict], summary: dict, seconds: float) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:.1f}"

    lines = [SECTION, "",
             f"ELPV, K = {K} good + {K} defective per seed, the other {2624 - 2 * K} cells unseen (the first "
             f"{runs[0].get('window', 0)} of them, in a seeded order, the unlabelled adaptation window; rates on the "
             "rest), profile "
             f"{DEFAULT_PROFILE}; targets: max review {MAX_REVIEW:.0%}, smallest max(escape, false reject). "
             f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads; {seconds:.0f} s. "
             "Promised = smoothed calibration estimate (the stacked point; counts for the vote); rates in %.", "",
             "| seed | decision | escape promised / realized | false reject promised / realized "
             "| review promised / realized | max(esc, FR) realized |",
             "|---|---|---|---|---|---|"]
    names = [name for name in DECISIONS if name in runs[0]]
    for r in runs:
        for name in names:
            p, q = r[name]["promised"], r[name]["realized"]
            lines.append(f"| {r['seed']} | {name} | {pct(p['escape'])} / {pct(q['escape'])} | "
                         f"{pct(p['false_reject'])} / {pct(q['false_reject'])} | {pct(p['review'])} / "
                         f"{pct(q['review'])} | {pct(max(q['escape'], q['false_reject']))} |")
    lines += ["", "| decision | escape realized (median, min-max) | false reject | review | max(esc, FR) "
              "| gap escape (median, max) | gap FR |", "|---|---|---|---|---|---|---|"]
    def cell(d: dict) -> str:
        return f"{pct(d['median'])} ({pct(d['min'])}-{pct(d['max'])})"

    for name in names:
        s = summary[name]
        lines.append(f"| {name} | {cell(s['escape']['realized'])} | {cell(s['false_reject']['realized'])} | "
                     f"{cell(s['review']['realized'])} | {cell(s['max_escape_fr'])} | "
                     f"{pct(s['escape']['gap']['median'])}, {pct(s['escape']['gap']['max'])} | "
                     f"{pct(s['false_reject']['gap']['median'])}, {pct(s['false_reject']['gap']['max'])} |")
    g = summary["goods_only"]
    lines += ["", f"Goods only (anomaly model, N = {K} goods, false-reject target {GOODS_ONLY_FR:.0%}, "
              f"max review {MAX_REVIEW:.0%}): realized false reject among automatically decided goods "
              f"{pct(g['false_reject']['median'])} % ({pct(g['false_reject']['min'])}-{pct(g['false_reject']['max'])}),"
              f" goods failed per good part {pct(g['fail_per_good']['median'])} %, review share "
              f"{pct(g['review']['median'])} %, escapes {pct(g['escape']['median'])} % (unknown to the tool).", "",
             f"Hindsight bound (the best cut points on the combined score, chosen with the unseen cells' labels, "
             f"review <= {MAX_REVIEW:.0%}): max(escape, false reject) {cell(summary['hindsight']['max_escape_fr'])} %, "
             f"<= 22 % on {summary['hindsight']['seeds_le_22']} of {len(runs)} seeds.", "",
             "Seeds whose realized rate lies inside the promised 90 % range (escape, false reject): "
             + "; ".join(f"{name} {held['escape']} and {held['false_reject']} of {len(runs)}"
                         for name, held in summary.get("ranges_hold", {}).items()) + ".", "",
             f"Adaptation refused by the cross-check on seeds {summary.get('adapted_refused', [])} "
             "(their `adapted` rows are the training-only point).", "",
             f"Musts (median over seeds): {json.dumps(summary['musts'])}; on every seed: "
             f"{json.dumps(summary['musts_every_seed'])}.", ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    content = path.read_text(encoding="utf-8")
    start = content.find(SECTION)
    if start >= 0:
        end = content.find("\n## ", start + len(SECTION))
        content = content[:start] + text + ("" if end < 0 else content[end:])
    else:
        content = content.rstrip("\n") + "\n\n" + text
    path.write_text(content, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--max-review", type=float, default=MAX_REVIEW)
    parser.add_argument("--window", type=int, default=WINDOW,
                        help="unseen cells per seed used unlabelled to adapt the point (0: no adaptation)")
    parser.add_argument("--cache", type=Path, help="a file keeping the backbone cache between runs")
    parser.add_argument("--dump", type=Path, help="a folder to keep each seed's scores in (seed<N>.npz)")
    parser.add_argument("--reuse", action="store_true",
                        help="take a seed's models' scores from --dump when kept there (the rules rerun, no fitting)")
    parser.add_argument("--write", action="store_true", help="rewrite this section of bench/RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    runs = []
    backbone = None
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        kept = None if args.dump is None else args.dump / f"seed{seed}.npz"
        if args.reuse and kept is not None and kept.exists():  # the models' scores of an earlier run
            with np.load(kept) as stored:
                scores = {key: stored[key] for key in stored.files}
            scores.setdefault("fit_s", np.array(0.0))
        else:
            if backbone is None:
                images, is_defect = load_elpv()
                backbone = (images, is_defect, *backbone_cache(images, args.profile, args.cache))
            scores = fit_scores(*backbone, seed, args.profile)
            if kept is not None:
                kept.parent.mkdir(parents=True, exist_ok=True)
                np.savez(kept, **scores)
        runs.append(run_seed(scores, seed, args.max_review, args.window))
        print(json.dumps(runs[-1]), flush=True)
    summary = summarise(runs)
    text = table(runs, summary, time.perf_counter() - started)
    print(text)
    if args.write:
        write_section(text)
    print(json.dumps({"seeds": args.seeds, "seed_offset": args.seed_offset, **summary}))


if __name__ == "__main__":
    main()
