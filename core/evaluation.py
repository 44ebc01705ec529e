"""What a model version does on labelled parts, in the plant's terms: curves, the three rates at its
operating point, and the rates realised on the line estimated from operators' verdicts.

Rates (issue 18): *escape* = defective parts passed automatically among the defective parts decided
automatically; *false reject* = good parts failed automatically among the good parts decided
automatically; *review share* = parts sent to a person among all parts. Each comes with its count and a
95 % Wilson score interval (Wilson 1927), so a rate resting on 12 parts reads as such.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from core.images import ImageRejectedError, decode_image
from core.operating_point import rates
from core.studio import Studio
from core.thumbnails import thumbnail_jpeg
from core.tools import require_tool
from storage import review_queue as queue_repo
from storage.tables import QUEUE_PRIORITIES

CURVE_POINTS = 101  # curves are subsampled to at most this many points
Z95 = 1.959964  # two-sided 95 %


def wilson(successes: int, n: int) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion (None without any trial)."""
    return rates.wilson(successes / n, n, z=Z95) if n > 0 else None


def rate(successes: int, n: int) -> dict[str, Any]:
    """A proportion with the count it rests on and its interval."""
    interval = wilson(successes, n)
    return {"rate": successes / n if n else None, "count": successes, "n": n,
            "interval": None if interval is None else [round(interval[0], 4), round(interval[1], 4)]}


def operating_rates(defective: list[bool], decisions: list[str]) -> dict[str, Any]:
    """Escape, false-reject and review rates of ``decisions`` (pass | fail | review) on parts whose truth is
    ``defective``."""
    truth, made = np.asarray(defective, dtype=bool), np.asarray(decisions)
    auto = made != "review"
    return {"escape": rate(int(np.sum(truth & auto & (made == "pass"))), int(np.sum(truth & auto))),
            "false_reject": rate(int(np.sum(~truth & auto & (made == "fail"))), int(np.sum(~truth & auto))),
            "review_share": rate(int(np.sum(~auto)), len(made))}


def _thin(*arrays: np.ndarray) -> list[list[float]]:
    keep = np.unique(np.linspace(0, len(arrays[0]) - 1, min(CURVE_POINTS, len(arrays[0]))).round().astype(int))
    return [[round(float(v), 5) for v in array[keep]] for array in arrays]


def curves(defective: list[bool], scores: list[float]) -> dict[str, Any] | None:
    """ROC and precision-recall curves of the defect ``scores`` (subsampled), their areas and the
    defective share; None unless both good and defective parts are present."""
    truth, score = np.asarray(defective, dtype=bool), np.asarray(scores, dtype=np.float64)
    if truth.all() or not truth.any():
        return None
    fpr, tpr, _ = roc_curve(truth, score)
    precision, recall, _ = precision_recall_curve(truth, score)
    roc_fpr, roc_tpr = _thin(fpr, tpr)
    pr_recall, pr_precision = _thin(recall[::-1], precision[::-1])
    return {"roc": {"fpr": roc_fpr, "tpr": roc_tpr}, "pr": {"recall": pr_recall, "precision": pr_precision},
            "auc": float(roc_auc_score(truth, score)),
            "average_precision": float(average_precision_score(truth, score)),
            "defective_share": float(truth.mean())}


def thumbnail(studio: Studio, image_key: str) -> bytes | None:
    """A small JPEG of a stored image (a misclassified part), None when it cannot be read."""
    try:
        return thumbnail_jpeg(decode_image(studio.images.read(image_key)).rgb)
    except (ImageRejectedError, OSError):
        return None


def _share(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def realised_rates(studio: Studio, tool_name: str, version_id: int) -> dict[str, Any]:
    """The escape and false-reject rates the version realised on the line, estimated from operators'
    verdicts on the parts it decided.

    The sample: defectives among passes from the *audit draws* (a random ``audit_share`` of passes sent
    to review, so an unbiased sample of passes); goods among fails from the *reviewed fails* (whatever
    fails operators reviewed: suggestions and queued ones, not a random draw, so that share can be
    biased towards doubtful parts). With N passes and M fails decided automatically, escape =
    N d / (N d + M f) and false reject = M (1 - f) / (M (1 - f) + N (1 - d)), where d is the defective
    share of audited passes and f that of reviewed fails; the intervals combine the two shares' ends.
    """
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        outcomes = queue_repo.review_outcomes(session, tool.id, version_id)
        good = tool.good_class
    audit = QUEUE_PRIORITIES["audit"]
    decided = {d: sum(n for (decision, _, _), n in outcomes.items() if decision == d) for d in ("pass", "fail")}
    audited = {k: n for k, n in outcomes.items() if k[0] == "pass" and k[1] == audit and k[2] is not None}
    reviewed_fails = {k: n for k, n in outcomes.items() if k[0] == "fail" and k[2] is not None}
    defective_passes = rate(sum(n for k, n in audited.items() if k[2] != good), sum(audited.values()))
    defective_fails = rate(sum(n for k, n in reviewed_fails.items() if k[2] != good), sum(reviewed_fails.values()))
    result: dict[str, Any] = {
        "version": version_id, "passes": decided["pass"], "fails": decided["fail"],
        "defective_among_audited_passes": defective_passes, "defective_among_reviewed_fails": defective_fails,
        "sample": "audit draws of passes (random) and reviewed fails (not random)",
        "escape": None, "false_reject": None}
    if defective_passes["n"] == 0 or defective_fails["n"] == 0:
        result["note"] = ("needs audited passes and reviewed fails: "
                          f"{defective_passes['n']} audited pass(es), {defective_fails['n']} reviewed fail(s) so far")
        return result
    n_pass, n_fail = decided["pass"], decided["fail"]

    def escape(d: float, f: float) -> float | None:
        return _share(n_pass * d, n_pass * d + n_fail * f)

    def false_reject(d: float, f: float) -> float | None:
        return _share(n_fail * (1 - f), n_fail * (1 - f) + n_pass * (1 - d))

    (d_lo, d_hi), (f_lo, f_hi) = defective_passes["interval"], defective_fails["interval"]
    d, f = defective_passes["rate"], defective_fails["rate"]
    result["escape"] = {"rate": escape(d, f), "interval": [escape(d_lo, f_hi), escape(d_hi, f_lo)],
                        "rests_on": defective_passes["n"] + defective_fails["n"]}
    result["false_reject"] = {"rate": false_reject(d, f),
                              "interval": [false_reject(d_lo, f_hi), false_reject(d_hi, f_lo)],
                              "rests_on": defective_passes["n"] + defective_fails["n"]}
    return result
