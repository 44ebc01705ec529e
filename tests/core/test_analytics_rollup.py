"""The analytics rollup against the inspection table, on SQLite and PostgreSQL: every figure of the
dashboard is the same from both sources (the latency median and p95 within the stated bound), after
new inspections arrive, after reviews change the agreement, and after the migration backfills
inspections written before the rollup existed."""

from __future__ import annotations

import math
import random
from dataclasses import fields, replace
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from alembic import command
from sqlalchemy import text

from core.analytics.dashboard import LATENCY_QUANTILE_BOUND, Dashboard, Kpis, line_of, load_dashboard
from core.analytics.filters import AnalyticsFilter
from core.audit import SYSTEM
from core.reviews import as_reviewer, undo_review
from core.studio import Studio
from core.tools import create_tool
from storage import repository as repo
from storage.migrate import alembic_config
from tests.actors import OPERATOR
from tests.rollups import current, recounted

pytestmark = pytest.mark.slow  # 400 inspections written one by one per test and backend: 3-15 s each

TOOL = "cells"
START = datetime(2024, 3, 4)
STATIONS = ["L1/a", "L1/b", "L2/a", "solo"]
LABELS = {"pass": ["good"], "fail": ["crack", "dent"], "review": ["crack", "dent", "good"]}
EDGE_SCORES = [0.0, 0.05, 0.15, 0.35, 0.55, 0.7, 0.95, 1.0, 0.29, 0.57]  # bin edges where float division wobbles
WEEK = AnalyticsFilter(TOOL, date(2024, 3, 11), date(2024, 3, 17))


def rows(n: int, seed: int, versions: list[int | None]) -> list[dict]:
    """``n`` inspections over three weeks from 4 March 2024, some at bin edges and whole hours."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        decision = rng.choice(["pass"] * 6 + ["fail", "review"])
        whole = i % 7 == 0  # exactly on the hour, or at midnight
        offset = timedelta(hours=rng.randrange(21 * 24)) if whole else timedelta(seconds=rng.uniform(0, 21 * 86400))
        out.append(dict(station=rng.choice(STATIONS), model_version_id=rng.choice(versions), created_at=START + offset,
                        decision=decision, label=rng.choice(LABELS[decision]),
                        score=rng.choice(EDGE_SCORES) if i % 5 == 0 else rng.random(),
                        latency_ms=rng.choice([0.0, 1.0, 35.0]) if i % 11 == 0 else rng.lognormvariate(3.5, 0.4),
                        needs_review=decision == "review"))
    return out


def add(studio: Studio, batch: list[dict], review_share: float, seed: int) -> None:
    rng = random.Random(seed)
    with studio.transaction() as session:
        tool_id = repo.get_tool(session, TOOL).id
        for row in batch:
            inspection = repo.add_inspection(session, tool_id=tool_id, scores={}, **row)
            if rng.random() < review_share:
                repo.add_review(session, inspection.id, rng.choice(["good", "crack", "dent"]), "tester")


FILTERS = [WEEK, replace(WEEK, start=date(2024, 3, 4), end=date(2024, 3, 24)), replace(WEEK, station="L1/b"),
           replace(WEEK, shift="night"), replace(WEEK, start=date(2024, 3, 4), shift="late", station="solo")]


def assert_same(studio: Studio, flt: AnalyticsFilter, grain: str = "day") -> Dashboard:
    exact = load_dashboard(studio, flt, grain=grain, source="inspections")
    rolled = load_dashboard(studio, flt, grain=grain, source="rollup")
    for field in fields(Dashboard):
        a, b = getattr(exact, field.name), getattr(rolled, field.name)
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=field.name)
        elif isinstance(a, Kpis):
            assert_kpis(a, b)
        elif field.name == "drift" and a is not None:
            assert (a.reference == b.reference).all() and (a.recent == b.recent).all()
            assert (a.psi, a.ks, a.reference_source) == (b.psi, b.ks, b.reference_source)
        else:
            assert a == b, field.name
    return exact


def assert_kpis(exact: Kpis, rolled: Kpis) -> None:
    assert replace(exact, latency_median_ms=None, latency_p95_ms=None) == replace(
        rolled, latency_median_ms=None, latency_p95_ms=None)
    for a, b in ((exact.latency_median_ms, rolled.latency_median_ms), (exact.latency_p95_ms, rolled.latency_p95_ms)):
        assert (a is None) == (b is None)
        if a is not None:  # the bound is relative to 1 + ms of the upper neighbour; 1 + a is within 2 bins of it
            assert abs(a - b) <= LATENCY_QUANTILE_BOUND * (1 + a) * math.exp(2 / 20), (a, b)


@pytest.fixture
def filled(any_studio: Studio) -> tuple[Studio, list[int]]:
    create_tool(any_studio, TOOL, "good,crack,dent", actor=SYSTEM)
    with any_studio.transaction() as session:
        tool = repo.get_tool(session, TOOL)
        versions = [repo.add_model_version(session, tool_id=tool.id, method="classifier", profile="fast",
                                           status=status, metrics={}, artifact_dir="x", train_seconds=1.0,
                                           n_samples=4).id for status in ("retired", "active")]
    add(any_studio, rows(400, 1, [*versions, None]), 0.3, 1)
    return any_studio, versions


def test_every_figure_is_the_same_from_the_rollup(filled: tuple[Studio, list[int]]) -> None:
    studio, versions = filled
    board = assert_same(studio, WEEK)
    assert board.kpis.inspections > 50 and board.kpis.reviewed > 10 and board.drift is not None
    for grain in ("hour", "week"):
        assert_same(studio, WEEK, grain)
    for flt in [*FILTERS, replace(WEEK, model_version_id=versions[0])]:
        assert_same(studio, flt)


def test_the_rollup_follows_new_inspections_and_reviews(filled: tuple[Studio, list[int]]) -> None:
    studio, versions = filled
    before = assert_same(studio, WEEK)
    add(studio, rows(150, 2, versions), 0.0, 2)  # new inspections
    after = assert_same(studio, WEEK)
    assert after.kpis.inspections > before.kpis.inspections
    with studio.transaction() as session:  # reviews of inspections not reviewed yet change the agreement
        pending = session.execute(text("SELECT i.id FROM inspection i LEFT JOIN review r ON r.inspection_id = i.id "
                                       "WHERE r.id IS NULL ORDER BY i.id")).scalars().all()
        for inspection_id in pending[::3]:
            repo.add_review(session, inspection_id, "dent", "tester")
    reviewed = assert_same(studio, WEEK)
    assert reviewed.kpis.reviewed > after.kpis.reviewed and reviewed.kpis.agreement != after.kpis.agreement
    for flt in FILTERS:
        assert_same(studio, flt)
    with studio.transaction() as session:  # verdicts taken back leave the rollup as if never given
        taken_back = session.execute(text("SELECT id FROM review ORDER BY id")).scalars().all()[::4]
    for review_id in taken_back:
        undo_review(studio, review_id, as_reviewer(OPERATOR))
    undone = assert_same(studio, WEEK)
    assert undone.kpis.reviewed < reviewed.kpis.reviewed
    assert current(studio) == recounted(studio)
    for flt in FILTERS:
        assert_same(studio, flt)


def test_the_migration_backfills_existing_inspections(filled: tuple[Studio, list[int]]) -> None:
    studio, _ = filled
    exact = load_dashboard(studio, WEEK, source="inspections")
    config = alembic_config(studio.engine)
    command.downgrade(config, "0012")  # as a database from before the rollup
    command.upgrade(config, "head")  # backfills every inspection in one INSERT ... SELECT per rollup
    assert load_dashboard(studio, WEEK).kpis.inspections == exact.kpis.inspections
    assert current(studio) == recounted(studio)
    for flt in FILTERS:
        assert_same(studio, flt)


def test_stations_and_lines(filled: tuple[Studio, list[int]]) -> None:
    studio, _ = filled
    board = load_dashboard(studio, WEEK)
    assert set(board.stations["station"]) <= set(STATIONS) and list(board.lines["line"]) == ["L1", "L2", "solo"]
    assert board.stations["inspections"].sum() == board.lines["inspections"].sum() == board.kpis.inspections
    l1 = board.stations[board.stations["station"].map(line_of) == "L1"][["inspections", "failed"]].sum()
    line = board.lines.set_index("line").loc["L1"]
    assert (line["inspections"], line["failed"]) == (l1["inspections"], l1["failed"])
    assert line["defect_rate"] == pytest.approx(l1["failed"] / l1["inspections"])
    one = load_dashboard(studio, replace(WEEK, station="L2/a"))
    assert one.stations["station"].tolist() == ["L2/a"] and one.kpis.inspections == int(
        board.stations.set_index("station").loc["L2/a", "inspections"])


def test_latency_quantiles_from_the_rollup_stay_within_the_bound(filled: tuple[Studio, list[int]]) -> None:
    studio, _ = filled
    flt = replace(WEEK, start=date(2024, 3, 4), end=date(2024, 3, 24))
    with studio.transaction() as session:
        values = np.sort(session.execute(text("SELECT latency_ms FROM inspection")).scalars().all())
    exact, rolled = (load_dashboard(studio, flt, source=s).kpis for s in ("inspections", "rollup"))
    for q_, a, b in ((0.5, exact.latency_median_ms, rolled.latency_median_ms),
                     (0.95, exact.latency_p95_ms, rolled.latency_p95_ms)):
        assert a == pytest.approx(float(np.quantile(values, q_)))
        upper = values[min(math.floor(q_ * (len(values) - 1)) + 1, len(values) - 1)]
        assert abs(a - b) <= LATENCY_QUANTILE_BOUND * (1 + upper)
