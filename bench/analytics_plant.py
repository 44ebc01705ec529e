"""Analytics at plant scale (issue 21): the Analytics page's data for a year of several stations on
PostgreSQL, from the rollups against the inspection table itself (the naive path), in the same run.

Builds ``--rows`` inspections (default 10,000,000) of one tool over 365 days on 6 stations of 2 lines
(``L1/s1`` .. ``L2/s3``), two model versions (the second from mid-year), 86 % pass / 9 % fail / 5 % review,
80 % of the reviews answered, with ``INSERT ... SELECT ... FROM generate_series`` in chunks of 1M
(server-side ``random()`` after ``setseed(--seed)``; no ORM), into a throwaway PostgreSQL
(tests/postgres.py); then fills the rollups with ``analytics_queries.roll_up`` over every row (the
statement ``add_inspection`` runs for one row and the migrations run as their backfill; timed) and runs
``VACUUM ANALYZE``. ``--verify`` (small N) replays every inspection through ``repository.add_inspection``
into a second database and checks that its incrementally kept rollups equal the bulk-filled ones.
Then times, for each source (``rollup``, then ``inspections``: the naive query over the table):
- ``page``: ``filter_options`` + ``load_dashboard`` of the page's default view (the last 30 days, every
  station / version / shift, daily buckets, drift of the active version): rates, Pareto, agreement,
  scores, latency, drift, per station / per line, recent rows; everything the page shows but thumbnails;
- ``year``: the same for the whole year.
``cold`` is the first run after a server restart (empty shared buffers; the OS page cache stays warm);
``warm`` the median of ``--repeats`` runs after it. The two sources must give the same counts (checked).
The slowest statements of one more page load are printed per source.
Run it under the CPU lock: ``flock /tmp/cpu-heavy.lock .venv/bin/python bench/analytics_plant.py``.
The last line printed is one JSON object (``n``, ``pg_page_s``, ``naive_page_s``, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, text, true

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.analytics.dashboard import Dashboard, filter_options, load_dashboard  # noqa: E402
from core.analytics.filters import AnalyticsFilter  # noqa: E402
from core.audit import SYSTEM  # noqa: E402
from core.config import Settings  # noqa: E402
from core.studio import Studio, open_studio  # noqa: E402
from core.tools import create_tool  # noqa: E402
from storage import repository as repo  # noqa: E402
from storage.analytics_queries import SOURCES, Source, roll_up, roll_up_reviews  # noqa: E402
from storage.tables import Inspection, Review  # noqa: E402
from tests.postgres import TemporaryPostgres, running_postgres  # noqa: E402
from tests.rollups import ROLLUPS, current  # noqa: E402

TOOL = "housing"
DAYS = 365
END = date(2026, 12, 1)  # the year ends the day before
CHUNK = 1_000_000
STATIONS = ["L1/s1", "L1/s2", "L1/s3", "L2/s1", "L2/s2", "L2/s3"]
REPLAYED = ["station", "model_version_id", "created_at", "decision", "label", "score", "scores", "opinions",
            "degraded", "latency_ms", "needs_review"]


def log(message: str) -> None:
    print(message, flush=True)


def create_versions(studio: Studio) -> tuple[int, int, int]:
    """The tool and its two versions (retired, active); returns (tool, old, new) ids."""
    create_tool(studio, TOOL, "good,scratch,dent,crack", actor=SYSTEM)
    with studio.transaction() as session:
        tool_id = repo.get_tool(session, TOOL).id
        old, new = (repo.add_model_version(session, tool_id=tool_id, method="classifier", profile="fast",
                                           status=status, metrics={}, artifact_dir=status, train_seconds=1.0,
                                           n_samples=60).id for status in ("retired", "active"))
    return tool_id, old, new


def seed_rows(studio: Studio, n: int, seed: float) -> tuple[int, int]:
    """The tool, two versions and ``n`` inspections with their reviews; returns (active version, reviews)."""
    tool_id, old, new = create_versions(studio)
    start = datetime.combine(END - timedelta(days=DAYS), datetime.min.time())
    stations = "ARRAY[" + ", ".join(f"'{s}'" for s in STATIONS) + "]"
    raw = studio.engine.raw_connection()
    try:
        cursor = raw.cursor()
        raw.driver_connection.autocommit = True
        cursor.execute("ALTER SYSTEM SET max_wal_size = '8GB'")  # fewer checkpoints while loading
        cursor.execute("SELECT pg_reload_conf()")
        raw.driver_connection.autocommit = False
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
    """Every inspection and review into every rollup with the statements ``add_inspection`` and
    ``add_review`` run for one row; seconds."""
    began = time.perf_counter()
    with studio.transaction() as session:
        session.execute(text("SET LOCAL work_mem = '256MB'"))  # this transaction only: its GROUP BY in memory
        roll_up(session, true())
        roll_up_reviews(session, true())
    return time.perf_counter() - began


def verify_incremental(server: TemporaryPostgres, studio: Studio) -> int:
    """Replay every inspection and review through ``repository.add_inspection`` / ``add_review`` (which
    roll each row up in its transaction) into a second database; its rollups must equal the bulk-filled ones.
    Returns the number of rollup rows compared."""
    replica = open_studio(Settings(data_dir=Path(server.dir) / "replica",
                                   database_url=server.create_database("incremental")))
    tool_id = create_versions(replica)[0]
    with studio.transaction() as session:
        rows = [row._asdict() for row in session.execute(
            select(*(getattr(Inspection, c) for c in REPLAYED)).order_by(Inspection.id))]
    with studio.transaction() as session:
        reviews = session.execute(select(Review.inspection_id, Review.verdict).order_by(Review.id)).all()
    for first in range(0, len(rows), 100):
        with replica.transaction() as session:
            for row in rows[first:first + 100]:
                repo.add_inspection(session, tool_id=tool_id, **row)
    with replica.transaction() as session:  # same ids: both databases numbered the same rows from 1
        for inspection_id, verdict in reviews:
            repo.add_review(session, inspection_id, verdict, "bench")
    bulk, incremental = current(studio), current(replica)
    replica.engine.dispose()
    for table in ROLLUPS:
        name = table.__tablename__
        assert bulk[name] == incremental[name], f"{name}: bulk and incremental rollups differ"
    return sum(len(rows) for rows in bulk.values())


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


@contextmanager
def statement_times(studio: Studio) -> Iterator[list[tuple[float, str]]]:
    """(seconds, SQL) of every statement run inside the block."""
    times: list[tuple[float, str]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info["began"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        times.append((time.perf_counter() - conn.info.pop("began"), " ".join(statement.split())))

    event.listen(studio.engine, "before_cursor_execute", before)
    event.listen(studio.engine, "after_cursor_execute", after)
    try:
        yield times
    finally:
        event.remove(studio.engine, "before_cursor_execute", before)
        event.remove(studio.engine, "after_cursor_execute", after)


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
        with statement_times(studio) as times:
            page(studio, views["page"], source)
        for seconds, statement in sorted(times, reverse=True)[:6]:
            log(f"    page {source} {seconds * 1000:7.1f} ms  {statement[:150]}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-repeats", type=int, default=3)
    parser.add_argument("--seed", type=float, default=0.21)
    parser.add_argument("--verify", action="store_true", help="check the bulk rollup against add_inspection's")
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
        if args.verify:
            log(f"verified: {verify_incremental(server, studio):,} rollup rows, bulk == add_inspection's")
        vacuum(studio)
        with studio.engine.connect() as connection:
            sizes = {t.__tablename__: connection.exec_driver_sql(
                f"SELECT count(*), pg_total_relation_size('{t.__tablename__}') FROM {t.__tablename__}").one()
                for t in (Inspection, *ROLLUPS)}
        log("rows, bytes: " + ", ".join(f"{k} {n:,} / {b / 2**20:,.0f} MiB" for k, (n, b) in sizes.items()))
        last = END - timedelta(days=1)
        views = {"page": AnalyticsFilter(TOOL, last - timedelta(days=29), last),
                 "year": AnalyticsFilter(TOOL, END - timedelta(days=DAYS), last)}
        figures = measure(server, studio, views, args.repeats, args.naive_repeats)
        for view in views:
            assert figures[f"{view}_rollup_inspections"] == figures[f"{view}_inspections_inspections"], view
        studio.engine.dispose()
    result = {"n": args.rows, "pg_page_s": figures["page_rollup_warm_s"],
              "naive_page_s": figures["page_inspections_warm_s"], "pg_year_s": figures["year_rollup_warm_s"],
              "naive_year_s": figures["year_inspections_warm_s"], "pg_page_cold_s": figures["page_rollup_cold_s"],
              "seed": args.seed, "active_version": version, "reviews": reviews, "load_s": round(load_s, 1),
              "backfill_s": round(backfill_s, 1), "verified": args.verify,
              **{f"{name}_rows": n for name, (n, _) in sizes.items()}, **figures, "load": os.getloadavg()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
