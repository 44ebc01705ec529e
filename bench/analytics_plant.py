"""Analytics at plant scale (issue 21): the Analytics page's data for a year of several stations on
PostgreSQL, from the rollup against the inspection table itself (the code path before the rollup),
in the same run.

Builds ``--rows`` inspections (default 10,000,000) of one tool over 365 days on 6 stations of 2 lines
(``L1/s1`` .. ``L2/s3``), two model versions (the second from mid-year), 86 % pass / 9 % fail / 5 % review,
80 % of the reviews answered, with ``INSERT ... SELECT ... FROM generate_series`` in chunks of 1M
(server-side ``random()`` after ``setseed(--seed)``; no ORM), into a throwaway PostgreSQL
(tests/postgres.py); then fills the rollup with the migration's backfill (``roll_up``, timed) and runs
``VACUUM ANALYZE``. Then times, for each source:
- ``page``: ``filter_options`` + ``load_dashboard`` of the page's default view (the last 30 days, every
  station / version / shift, daily buckets, drift of the active version): everything the page shows
  but thumbnails;
- ``year``: the same for the whole year.
``cold`` is the first run after a server restart (empty shared buffers; the OS page cache stays warm);
``warm`` the median of ``--repeats`` runs after it. The two sources must give the same counts (checked).
Run it under the CPU lock: ``flock /tmp/cpu-heavy.lock .venv/bin/python bench/analytics_plant.py``.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import true

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.analytics.dashboard import Dashboard, filter_options, load_dashboard  # noqa: E402
from core.analytics.filters import AnalyticsFilter  # noqa: E402
from core.audit import SYSTEM  # noqa: E402
from core.config import Settings  # noqa: E402
from core.studio import Studio, open_studio  # noqa: E402
from core.tools import create_tool  # noqa: E402
from storage import repository as repo  # noqa: E402
from storage.analytics_queries import SOURCES, Source, roll_up  # noqa: E402
from tests.postgres import TemporaryPostgres, running_postgres  # noqa: E402

TOOL = "housing"
DAYS = 365
END = date(2026, 12, 1)  # the year ends the day before
CHUNK = 1_000_000
STATIONS = ["L1/s1", "L1/s2", "L1/s3", "L2/s1", "L2/s2", "L2/s3"]


def log(message: str) -> None:
    print(message, flush=True)


def seed_rows(studio: Studio, n: int, seed: float) -> tuple[int, int]:
    """The tool, two versions and ``n`` inspections with their reviews; returns (active version, reviews)."""
    create_tool(studio, TOOL, "good,scratch,dent,crack", actor=SYSTEM)
    with studio.transaction() as session:
        tool_id = repo.get_tool(session, TOOL).id
        old, new = (repo.add_model_version(session, tool_id=tool_id, method="classifier", profile="fast",
                                           status=status, metrics={}, artifact_dir=status, train_seconds=1.0,
                                           n_samples=60).id for status in ("retired", "active"))
    start = datetime.combine(END - timedelta(days=DAYS), datetime.min.time())
    stations = "ARRAY[" + ", ".join(f"'{s}'" for s in STATIONS) + "]"
    raw = studio.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT setseed(%s)", (seed,))
        for first in range(0, n, CHUNK):
            last = min(first + CHUNK, n)
            cursor.execute(f"""
                INSERT INTO inspection (tool_id, station, model_version_id, created_at, decision, label, score,
                                        scores, opinions, degraded, latency_ms, needs_review, review_priority)
                SELECT {tool_id}, ({stations})[1 + floor(random() * 6)::int], CASE WHEN g < {n // 2} THEN {old}
                       ELSE {new} END, t, d, CASE WHEN d = 'pass' THEN 'good'
                       ELSE (ARRAY['scratch', 'dent', 'crack'])[1 + floor(random() * 3)::int] END,
                       CASE WHEN d = 'pass' THEN random() * 0.4 WHEN d = 'fail' THEN 0.6 + random() * 0.4
                       ELSE 0.4 + random() * 0.2 END, '{{}}', '{{}}', false,
                       exp(ln(32) + 0.25 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())),
                       d = 'review', 1
                FROM (SELECT g, TIMESTAMP '{start:%Y-%m-%d}' + (g + random()) * INTERVAL '{DAYS * 86400 / n} seconds'
                             AS t, CASE WHEN u < 0.86 THEN 'pass' WHEN u < 0.95 THEN 'fail' ELSE 'review' END AS d
                      FROM (SELECT g, random() AS u FROM generate_series({first}, {last - 1}) g) s) x""")
            raw.commit()
            log(f"  {last:,} inspections")
        cursor.execute("""INSERT INTO review (inspection_id, verdict, reviewer, created_at, device)
                          SELECT id, CASE WHEN random() < 0.7 THEN label ELSE 'good' END, 'bench', created_at, ''
                          FROM inspection WHERE decision = 'review' AND random() < 0.8""")
        reviews = cursor.rowcount
        raw.commit()
    finally:
        raw.close()
    return new, reviews


def backfill(studio: Studio) -> float:
    """The migration's backfill of the rollup over every inspection; seconds."""
    began = time.perf_counter()
    with studio.transaction() as session:
        roll_up(session, true())
    return time.perf_counter() - began


def vacuum(studio: Studio) -> None:
    with studio.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")


def restart(server: TemporaryPostgres, studio: Studio) -> None:
    """Stop and start the server on the same data: empty shared buffers."""
    studio.engine.dispose()
    pg_ctl = str(server.bin_dir / "pg_ctl")
    server._run(pg_ctl, "-D", str(server.dir / "db"), "-m", "fast", "-w", "stop")
    options = f"-p {server.port} -k {server.dir} -c listen_addresses='' -c fsync=off"
    server._run(pg_ctl, "-D", str(server.dir / "db"), "-o", options, "-l", str(server.dir / "log"), "-w", "start")


def page(studio: Studio, flt: AnalyticsFilter, source: Source) -> Dashboard:
    filter_options(studio, TOOL)
    return load_dashboard(studio, flt, source=source)


def timed(work: Callable[[], Dashboard]) -> tuple[float, Dashboard]:
    began = time.perf_counter()
    board = work()
    return time.perf_counter() - began, board


def measure(server: TemporaryPostgres, studio: Studio, views: dict[str, AnalyticsFilter], repeats: int,
            naive_repeats: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for source in SOURCES:
        for view, flt in views.items():
            restart(server, studio)
            cold, board = timed(lambda flt=flt, source=source: page(studio, flt, source))
            runs = [timed(lambda flt=flt, source=source: page(studio, flt, source))[0]
                    for _ in range(repeats if source == "rollup" else naive_repeats)]
            key = f"{view}_{source}"
            figures[f"{key}_cold_s"], figures[f"{key}_warm_s"] = round(cold, 3), round(statistics.median(runs), 3)
            figures[f"{key}_spread_s"] = round(max(runs) - min(runs), 3)
            figures[f"{key}_inspections"] = board.kpis.inspections
            log(f"  {view:4} {source:11}: cold {cold:.3f} s, warm median {statistics.median(runs):.3f} s "
                f"(runs {', '.join(f'{r:.3f}' for r in runs)}), {board.kpis.inspections:,} inspections")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-repeats", type=int, default=3)
    parser.add_argument("--seed", type=float, default=0.21)
    args = parser.parse_args()
    log(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, load {os.getloadavg()}")
    with running_postgres(log) as server:
        if server is None:
            raise SystemExit("PostgreSQL is needed")
        url = server.create_database("plant")
        studio = open_studio(Settings(data_dir=Path(server.dir) / "data", database_url=url))
        began = time.perf_counter()
        version, reviews = seed_rows(studio, args.rows, args.seed)
        load_s = time.perf_counter() - began
        log(f"seeded {args.rows:,} inspections and {reviews:,} reviews in {load_s:.1f} s")
        backfill_s = backfill(studio)
        log(f"rollup backfill in {backfill_s:.1f} s")
        vacuum(studio)
        with studio.engine.connect() as connection:
            sizes = {name: connection.exec_driver_sql(f"SELECT count(*), pg_total_relation_size('{name}') FROM {name}")
                     .one() for name in ("inspection", "inspection_rollup", "inspection_latency_rollup")}
        log("rows, bytes: " + ", ".join(f"{k} {n:,} / {b / 2**20:,.0f} MiB" for k, (n, b) in sizes.items()))
        last = END - timedelta(days=1)
        views = {"page": AnalyticsFilter(TOOL, last - timedelta(days=29), last),
                 "year": AnalyticsFilter(TOOL, END - timedelta(days=DAYS), last)}
        figures = measure(server, studio, views, args.repeats, args.naive_repeats)
        for view in views:
            assert figures[f"{view}_rollup_inspections"] == figures[f"{view}_inspections_inspections"], view
        studio.engine.dispose()
    result = {"rows": args.rows, "seed": args.seed, "active_version": version, "load_s": round(load_s, 1),
              "backfill_s": round(backfill_s, 1), "rollup_rows": sizes["inspection_rollup"][0],
              "latency_rollup_rows": sizes["inspection_latency_rollup"][0],
              "pg_page_s": figures["page_rollup_warm_s"], "pg_page_cold_s": figures["page_rollup_cold_s"],
              "pg_naive_s": figures["page_inspections_warm_s"], "pg_year_s": figures["year_rollup_warm_s"],
              "pg_year_naive_s": figures["year_inspections_warm_s"], **figures, "load": os.getloadavg()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
