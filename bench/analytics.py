"""Analytics benchmark: a year of inspections, the page's data from SQL against a naive pandas version.

Seeds 1,000,000 inspections (365 days, 5 tools, 3 stations, 2 model versions per tool, reviews of most
inspections sent to review) into a fresh SQLite database with executemany (and into a throwaway
PostgreSQL with COPY, started as tests/postgres.py does, unless --no-postgres or the server binaries
are missing). Then times, in the same run:

- ``page``: ``filter_options`` and ``load_dashboard`` of ``core.analytics.dashboard`` with the page's
  default filters (the first tool, the last 30 days, every station / version / shift, daily buckets,
  drift of the active version): everything the page shows but the thumbnails (no images here);
- ``naive``: read the whole inspection table (joined with reviews) into pandas and compute the same
  KPIs, daily defect rate, Pareto, confusion, histograms and drift there.

The two must agree on the KPIs, the Pareto and the PSI (checked). Medians of ``--repeats`` runs
(``--naive-repeats`` for the slow one). Run it under the CPU lock:
``flock /tmp/studio-cpu.lock .venv/bin/python bench/analytics.py``.
The last line printed is one JSON object: page_s, naive_s (SQLite) and pg_page_s, pg_naive_s.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import true

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.analytics.dashboard import Dashboard, filter_options, load_dashboard  # noqa: E402
from core.analytics.drift import FINE_BINS, ks, psi, score_histogram  # noqa: E402
from core.analytics.filters import AnalyticsFilter  # noqa: E402
from core.audit import SYSTEM  # noqa: E402
from core.config import Settings  # noqa: E402
from core.studio import Studio, open_studio  # noqa: E402
from core.tools import create_tool  # noqa: E402
from storage import repository as repo  # noqa: E402
from storage.analytics_queries import roll_up  # noqa: E402
from storage.tables import utc_now  # noqa: E402

TOOLS = ["bracket", "cap", "gear", "housing", "seal"]
DEFECTS = ["scratch", "dent", "crack", "stain", "burr"]
DEFECT_WEIGHTS = [0.40, 0.25, 0.17, 0.11, 0.07]
STATIONS = ["line-1", "line-2", "line-3"]
COLUMNS = ["tool_id", "station", "model_version_id", "created_at", "decision", "label", "score", "scores",
           "anomaly_score", "opinions", "degraded", "latency_ms", "image_key", "needs_review"]
CHUNK = 100_000
DEFAULT_DAYS = 30


def log(message: str) -> None:
    print(message, flush=True)


def synthetic(n: int, days: int, tool_ids: list[int], versions: dict[int, tuple[int, int]], now: datetime,
              seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Column arrays of ``n`` inspections and the review verdicts (None where there is no review).

    Each tool's first model version inspects the first half of the year, the second one the rest; the
    pass scores of the last 20 days drift upwards (lighting change) for the first tool."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, days * 86400, n))
    created = np.datetime64(now - timedelta(days=days), "us") + (seconds * 1e6).astype("timedelta64[us]")
    tool = rng.choice(tool_ids, n)
    half = seconds > days * 86400 / 2
    version = np.where(half, [versions[t][1] for t in tool], [versions[t][0] for t in tool])
    decision = rng.choice(np.array(["pass", "fail", "review"]), n, p=[0.86, 0.09, 0.05])
    defect = rng.choice(np.array(DEFECTS), n, p=DEFECT_WEIGHTS)
    label = np.where(decision == "pass", "good", defect)
    recent_shift = (seconds > (days - 20) * 86400) & (tool == tool_ids[0])
    score = np.where(decision == "pass", rng.beta(2, 12, n) + 0.08 * recent_shift,
                     np.where(decision == "fail", rng.uniform(0.6, 1.0, n), rng.uniform(0.4, 0.6, n)))
    score = np.clip(score, 0, 1)
    latency = rng.lognormal(np.log(32), 0.25, n)
    reviewed = (decision == "review") & (rng.random(n) < 0.8)
    verdict = np.where(rng.random(n) < 0.7, label, "good")
    columns = {
        "tool_id": tool, "station": rng.choice(np.array(STATIONS), n), "model_version_id": version,
        "created_at": np.char.replace(np.datetime_as_string(created, unit="us"), "T", " "),
        "decision": decision, "label": label, "score": score, "latency_ms": latency,
        "needs_review": decision == "review",
    }
    return columns, np.where(reviewed, verdict, None)


def _rows(columns: dict[str, np.ndarray], start: int, stop: int, postgres: bool) -> list[tuple]:
    score = columns["score"][start:stop]
    scores = [f'{{"good": {1 - s:.4f}, "defect": {s:.4f}}}' for s in score]
    flag = (lambda v: "t" if v else "f") if postgres else int
    return [
        (int(t), st, int(v), ts, d, lab, float(s), js, None, "{}", flag(False), float(ms), None, flag(bool(r)))
        for t, st, v, ts, d, lab, s, js, ms, r in zip(
            columns["tool_id"][start:stop], columns["station"][start:stop], columns["model_version_id"][start:stop],
            columns["created_at"][start:stop], columns["decision"][start:stop], columns["label"][start:stop],
            score, scores, columns["latency_ms"][start:stop], columns["needs_review"][start:stop], strict=True)
    ]


def seed(studio: Studio, n: int, days: int, now: datetime) -> int:
    """Tools, model versions (the active ones with reference scores) and ``n`` inspections with reviews."""
    versions: dict[int, tuple[int, int]] = {}
    rng = np.random.default_rng(1)
    for name in TOOLS:
        create_tool(studio, name, ["good", *DEFECTS], actor=SYSTEM)
    with studio.transaction() as session:
        for name in TOOLS:
            tool = repo.get_tool(session, name)
            ids = []
            for status in ("retired", "active"):
                metrics = {"reference_scores": [round(float(x), 6) for x in rng.beta(2, 12, 240)]} \
                    if status == "active" else {}
                version = repo.add_model_version(session, tool_id=tool.id, method="classifier", profile="fast",
                                                 status=status, metrics=metrics, artifact_dir=f"{name}-{status}",
                                                 train_seconds=1.0, n_samples=60)
                ids.append(version.id)
            versions[tool.id] = (ids[0], ids[1])
    columns, verdicts = synthetic(n, days, sorted(versions), versions, now)
    postgres = studio.engine.dialect.name == "postgresql"
    raw = studio.engine.raw_connection()
    try:
        cursor = raw.cursor()
        names = ", ".join(COLUMNS)
        for start in range(0, n, CHUNK):
            rows = _rows(columns, start, min(start + CHUNK, n), postgres)
            if postgres:
                with cursor.copy(f"COPY inspection ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(f"INSERT INTO inspection ({names}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
        raw.commit()
        reviewed = np.flatnonzero(verdicts != None)  # noqa: E711 - elementwise
        cursor.execute("SELECT min(id) FROM inspection")
        first_id = cursor.fetchone()[0]
        review_rows = [(int(first_id + i), str(verdicts[i]), "bench", str(columns["created_at"][i])) for i in reviewed]
        if postgres:
            with cursor.copy("COPY review (inspection_id, verdict, reviewer, created_at) FROM STDIN") as copy:
                for row in review_rows:
                    copy.write_row(row)
        else:
            cursor.executemany("INSERT INTO review (inspection_id, verdict, reviewer, created_at) VALUES (?, ?, ?, ?)",
                               review_rows)
        raw.commit()
    finally:
        raw.close()
    with studio.transaction() as session:  # rows written around add_inspection: the migration's backfill
        roll_up(session, true())
    with studio.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # what autovacuum / a periodic ANALYZE does on a live database: planner statistics (and on
        # PostgreSQL the visibility map that lets index-only scans skip the table)
        connection.exec_driver_sql("VACUUM ANALYZE" if postgres else "ANALYZE")
    return len(review_rows)


def naive(studio: Studio, flt: AnalyticsFilter) -> dict[str, object]:
    """The spreadsheet way: every row into pandas, then filter and aggregate there."""
    frame = pd.read_sql(
        "SELECT i.*, r.verdict FROM inspection i LEFT JOIN review r ON r.inspection_id = i.id", studio.engine)
    tools = pd.read_sql("SELECT id, name FROM tool", studio.engine).set_index("name")
    versions = pd.read_sql("SELECT id, tool_id, method, status, metrics FROM model_version", studio.engine)
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    tool = tools.loc[flt.tool]
    start, end = pd.Timestamp(flt.start), pd.Timestamp(flt.end + timedelta(days=1))
    mine = frame[frame["tool_id"] == tool["id"]]

    def kpis(low: pd.Timestamp, high: pd.Timestamp) -> dict[str, float]:
        part = mine[(mine["created_at"] >= low) & (mine["created_at"] < high)]
        reviewed = part[part["verdict"].notna()]
        return {"inspections": len(part), "defect_rate": float((part["decision"] == "fail").mean()),
                "review_rate": float((part["decision"] == "review").mean()),
                "agreement": float((reviewed["verdict"] == reviewed["label"]).mean()),
                "latency_median_ms": float(part["latency_ms"].median()),
                "latency_p95_ms": float(part["latency_ms"].quantile(0.95))}

    length = end - start
    now_kpis, _previous = kpis(start, end), kpis(start - length, start)
    part = mine[(mine["created_at"] >= start) & (mine["created_at"] < end)]
    daily = part.groupby(part["created_at"].dt.floor("D"))["decision"].agg(
        inspections="size", failed=lambda d: (d == "fail").sum())
    judged = part["verdict"].where(part["verdict"].notna(), part["label"].where(part["decision"] == "fail"))
    pareto = judged[judged.notna() & (judged != "good")].value_counts()
    confusion = part[part["verdict"].notna()].groupby(["label", "verdict"]).size()
    score_bins = part.groupby([part["created_at"].dt.floor("D"),
                               (part["score"] * 20).clip(upper=19).astype(int)]).size()
    latency = np.bincount(np.floor(np.log1p(part["latency_ms"]) * 20).astype(int))  # the page's log bins
    active = versions[(versions["tool_id"] == tool["id"]) & (versions["status"] == "active")
                      & (versions["method"] == "classifier")].iloc[0]  # the tool's active classifier
    metrics = json.loads(active["metrics"]) if isinstance(active["metrics"], str) else active["metrics"]
    reference = score_histogram(metrics["reference_scores"])
    passes = part[(part["decision"] == "pass") & (part["model_version_id"] == active["id"])]
    recent = score_histogram(passes["score"].to_numpy(), FINE_BINS)
    del daily, confusion, score_bins, latency
    return {"kpis": now_kpis, "pareto": pareto.to_dict(), "psi": psi(reference, recent), "ks": ks(reference, recent)}


def timed(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def check_agreement(board: Dashboard, slow: dict[str, object]) -> None:
    """The SQL and pandas versions must give the same figures."""
    k = board.kpis
    fast = {"inspections": k.inspections, "defect_rate": k.defect_rate, "review_rate": k.review_rate,
            "agreement": k.agreement, "latency_median_ms": k.latency_median_ms, "latency_p95_ms": k.latency_p95_ms}
    for name, value in fast.items():
        assert abs(value - slow["kpis"][name]) < 1e-9, (name, value, slow["kpis"][name])
    assert dict(zip(board.pareto["defect_class"], board.pareto["count"], strict=True)) == slow["pareto"]
    assert board.drift is not None and abs(board.drift.psi - slow["psi"]) < 1e-9
    assert abs(board.drift.ks - slow["ks"]) < 1e-9


def run(label: str, studio: Studio, n: int, days: int, repeats: int, naive_repeats: int) -> dict[str, float]:
    now = utc_now()
    started = time.perf_counter()
    reviews = seed(studio, n, days, now)
    log(f"[{label}] seeded {n:,} inspections and {reviews:,} reviews over {days} days, {len(TOOLS)} tools "
        f"in {time.perf_counter() - started:.1f} s")
    today = now.date()
    default = AnalyticsFilter(TOOLS[0], today - timedelta(days=DEFAULT_DAYS - 1), today)
    year = AnalyticsFilter(TOOLS[0], today - timedelta(days=days - 1), today)
    page_s, (_, board) = timed(lambda: (filter_options(studio, default.tool), load_dashboard(studio, default)),
                               repeats)
    year_s, _ = timed(lambda: (filter_options(studio, year.tool), load_dashboard(studio, year)), repeats)
    naive_s, slow = timed(lambda: naive(studio, default), naive_repeats)
    check_agreement(board, slow)
    log(f"[{label}] default filters ({default.tool}, {default.start} .. {default.end}, "
        f"{board.kpis.inspections:,} inspections): page {page_s:.3f} s (median of {repeats}), "
        f"naive pandas {naive_s:.3f} s (median of {naive_repeats}), {naive_s / page_s:.1f}x; "
        f"PSI {board.drift.psi:.3f} KS {board.drift.ks:.3f}; figures agree")
    log(f"[{label}] whole year of one tool ({year.start} .. {year.end}): page {year_s:.3f} s")
    return {"page_s": round(page_s, 4), "naive_s": round(naive_s, 4), "page_year_s": round(year_s, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inspections", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-repeats", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    log(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as folder:
        data = Path(folder) / "data"
        studio = open_studio(Settings(data, f"sqlite:///{data / 'studio.db'}"))
        result.update(run("sqlite", studio, args.inspections, args.days, args.repeats, args.naive_repeats))
        studio.engine.dispose()
    if not args.no_postgres:
        from tests.postgres import running_postgres

        with running_postgres(log) as server, tempfile.TemporaryDirectory(prefix="bench-analytics-pg-") as folder:
            if server is not None:
                studio = open_studio(Settings(Path(folder), server.create_database("bench")))
                figures = run("postgresql", studio, args.inspections, args.days, args.repeats, args.naive_repeats)
                result.update({f"pg_{key}": value for key, value in figures.items()})
                studio.engine.dispose()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
