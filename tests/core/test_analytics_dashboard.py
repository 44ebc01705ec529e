"""core.analytics on SQLite and PostgreSQL: KPIs, buckets, Pareto, confusion, histograms, drift and CSV
export of a small set of known inspections, against numbers worked out by hand in the comments."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import replace
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from core.analytics.dashboard import LATENCY_QUANTILE_BOUND, Dashboard, filter_options, load_dashboard
from core.analytics.drift import FINE_BINS, REFERENCE_DAYS, drift_report, ks, psi, score_histogram
from core.analytics.export import CSV_COLUMNS, write_csv
from core.analytics.filters import DEFAULT_SHIFTS, AnalyticsFilter, Shift, parse_shifts, save_shifts
from core.audit import SYSTEM
from core.errors import InvalidInputError, NotFoundError
from core.studio import Studio
from core.tools import create_tool
from storage import repository as repo
from storage.analytics_queries import InspectionScope
from storage.tables import Tool

TOOL = "cells"
MONDAY = datetime(2024, 3, 4)
REFERENCE = [0.02, 0.07, 0.07, 0.12]  # training-time pass scores stored with the model version
# (offset from Monday 4 March 2024, station, decision, label, score, latency ms, operator's verdict)
PERIOD = [
    (timedelta(hours=7), "A", "pass", "good", 0.11, 10.0, None),
    (timedelta(hours=15), "A", "pass", "good", 0.12, 20.0, None),
    (timedelta(days=1, hours=23, minutes=30), "B", "fail", "crack", 0.92, 30.0, "crack"),
    (timedelta(days=2, hours=6), "A", "fail", "crack", 0.81, 40.0, None),
    (timedelta(days=2, hours=13, minutes=59), "B", "review", "dent", 0.56, 50.0, "good"),
    (timedelta(days=3, hours=2), "A", "review", "crack", 0.52, 60.0, "dent"),
    (timedelta(days=4, hours=10), "A", "fail", "dent", 0.72, 70.0, "dent"),
    (timedelta(days=5, hours=22), "B", "pass", "good", 0.31, 80.0, None),
    (timedelta(days=6, hours=12), "A", "pass", "good", 0.33, 90.0, None),
    (timedelta(days=6, hours=23, minutes=59, seconds=59), "B", "fail", "crack", 0.96, 100.0, None),
]
PREVIOUS = [  # 26 Feb - 3 Mar
    (timedelta(days=-7), "A", "pass", "good", 0.11, 25.0, None),  # the first instant of the previous period
    (timedelta(days=-3), "A", "pass", "good", 0.11, 5.0, None),
    (timedelta(days=-2), "A", "fail", "crack", 0.92, 15.0, "crack"),
]
OUTSIDE = [
    (timedelta(days=-7, seconds=-1), "A", "fail", "crack", 0.92, 1.0, None),
    (timedelta(days=7), "A", "fail", "crack", 0.92, 1.0, None),  # midnight after the period
]
WEEK = AnalyticsFilter(TOOL, date(2024, 3, 4), date(2024, 3, 10))


def add(studio: Studio, rows: list[tuple], version_id: int | None, tool: str = TOOL) -> list[int]:
    ids = []
    with studio.transaction() as session:
        tool_id = repo.get_tool(session, tool).id
        for offset, station, decision, label, score, latency, verdict in rows:
            inspection = repo.add_inspection(
                session, tool_id=tool_id, station=station, model_version_id=version_id, created_at=MONDAY + offset,
                decision=decision, label=label, score=score, scores={}, latency_ms=latency,
                needs_review=decision == "review")
            if verdict:
                repo.add_review(session, inspection.id, verdict, "tester")
            ids.append(inspection.id)
    return ids


def add_version(studio: Studio, metrics: dict, active: bool = True) -> int:
    with studio.transaction() as session:
        tool = repo.get_tool(session, TOOL)
        version = repo.add_model_version(session, tool_id=tool.id, method="classifier", profile="fast",
                                         status="active" if active else "retired", metrics=metrics,
                                         artifact_dir="x", train_seconds=1.0, n_samples=4)
        return version.id


@pytest.fixture
def known(any_studio: Studio) -> tuple[Studio, int, list[int]]:
    create_tool(any_studio, TOOL, "good,crack,dent", actor=SYSTEM)
    create_tool(any_studio, "other", "good,crack", actor=SYSTEM)
    version = add_version(any_studio, {"reference_scores": REFERENCE})
    ids = add(any_studio, PERIOD, version)
    add(any_studio, PREVIOUS + OUTSIDE, version)
    add(any_studio, PERIOD[:3], None, tool="other")
    return any_studio, version, ids


def test_kpis_of_the_period_and_the_previous_one(known: tuple[Studio, int, list[int]]) -> None:
    studio, _, _ = known
    board = load_dashboard(studio, WEEK, source="inspections")  # exact latency quantiles
    k = board.kpis
    assert k.inspections == 10
    assert k.defect_rate == pytest.approx(4 / 10)  # rows 3, 4, 7, 10 failed
    assert k.review_rate == pytest.approx(2 / 10)  # rows 5, 6
    assert k.reviewed == 4  # rows 3, 5, 6, 7
    assert k.agreement == pytest.approx(2 / 4)  # 3 (crack = crack) and 7 (dent = dent)
    assert k.latency_median_ms == pytest.approx(55.0)  # (50 + 60) / 2
    assert k.latency_p95_ms == pytest.approx(95.5)  # position 0.95 * 9 = 8.55: 90 + 0.55 * (100 - 90)
    p = board.previous
    assert (p.inspections, p.reviewed) == (3, 1)
    assert (p.defect_rate, p.review_rate, p.agreement) == (pytest.approx(1 / 3), 0.0, 1.0)
    assert p.latency_median_ms == pytest.approx(15.0)  # of 5, 15, 25
    assert p.latency_p95_ms == pytest.approx(24.0)  # position 1.9: 15 + 0.9 * 10
    rolled = load_dashboard(studio, WEEK)  # the rollup: within the bound times 1 + the upper neighbour
    assert rolled.kpis.latency_median_ms == pytest.approx(55.0, abs=LATENCY_QUANTILE_BOUND * 61)
    assert rolled.previous.latency_p95_ms == pytest.approx(24.0, abs=LATENCY_QUANTILE_BOUND * 26)


def test_defect_rate_per_day_week_and_hour(known: tuple[Studio, int, list[int]]) -> None:
    studio, _, _ = known
    daily = load_dashboard(studio, WEEK, grain="day").rate_over_time
    assert daily["bucket"].tolist() == [pd.Timestamp(2024, 3, d) for d in range(4, 11)]
    assert daily["inspections"].tolist() == [2, 1, 2, 1, 1, 1, 2]
    assert daily["failed"].tolist() == [0, 1, 1, 0, 1, 0, 1]
    assert daily["to_review"].tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert daily["defect_rate"].tolist() == pytest.approx([0, 1, 0.5, 0, 1, 0, 0.5])
    weekly = load_dashboard(studio, WEEK, grain="week").rate_over_time
    assert weekly[["inspections", "failed"]].values.tolist() == [[10, 4]]
    assert weekly["bucket"].tolist() == [pd.Timestamp(2024, 3, 4)]  # ISO weeks start on Monday
    hourly = load_dashboard(studio, WEEK, grain="hour").rate_over_time
    assert len(hourly) == 10
    assert pd.Timestamp(2024, 3, 6, 13) in hourly["bucket"].tolist()  # 13:59 belongs to 13:00
    assert pd.Timestamp(2024, 3, 10, 23) == hourly["bucket"].iloc[-1]


def test_previous_period_has_the_same_length() -> None:
    flt = AnalyticsFilter(TOOL, date(2024, 3, 10), date(2024, 3, 11), station="A")
    assert flt.days == 2
    assert flt.previous() == AnalyticsFilter(TOOL, date(2024, 3, 8), date(2024, 3, 9), station="A")


def test_pareto_and_confusion(known: tuple[Studio, int, list[int]]) -> None:
    studio, _, _ = known
    board = load_dashboard(studio, WEEK)
    # defect class = operator's verdict if reviewed, else the label of a failed part:
    # 3 crack, 4 crack, 5 good (not a defect), 6 dent, 7 dent, 10 crack
    assert board.pareto["defect_class"].tolist() == ["crack", "dent"]
    assert board.pareto["count"].tolist() == [3, 2]
    assert board.pareto["cumulative_share"].tolist() == pytest.approx([0.6, 1.0])
    assert board.confusion.values.tolist() == [["crack", "crack", 1], ["crack", "dent", 1],
                                               ["dent", "dent", 1], ["dent", "good", 1]]


def test_filters_station_shift_and_version(known: tuple[Studio, int, list[int]]) -> None:
    studio, version, _ = known
    assert load_dashboard(studio, replace(WEEK, station="B")).kpis.inspections == 4
    counts = {s.name: load_dashboard(studio, AnalyticsFilter(TOOL, WEEK.start, WEEK.end, shift=s.name)).kpis.inspections
              for s in DEFAULT_SHIFTS}
    # early 06-14: rows 1, 4, 5, 7, 9; late 14-22: row 2; night 22-06: rows 3, 6, 8, 10
    assert counts == {"early": 5, "late": 1, "night": 4}
    night_b = load_dashboard(studio, AnalyticsFilter(TOOL, WEEK.start, WEEK.end, station="B", shift="night"))
    assert night_b.kpis.inspections == 3  # rows 3, 8, 10
    assert load_dashboard(studio, AnalyticsFilter(TOOL, WEEK.start, WEEK.end, model_version_id=version)
                          ).kpis.inspections == 10
    assert load_dashboard(studio, AnalyticsFilter(TOOL, WEEK.start, WEEK.end, model_version_id=version + 99)
                          ).kpis.inspections == 0
    with pytest.raises(InvalidInputError, match="no shift named 'swing'"):
        load_dashboard(studio, AnalyticsFilter(TOOL, WEEK.start, WEEK.end, shift="swing"))
    with pytest.raises(NotFoundError):
        load_dashboard(studio, AnalyticsFilter("ghost", WEEK.start, WEEK.end))


def test_custom_shifts_are_a_tool_setting(known: tuple[Studio, int, list[int]]) -> None:
    studio, _, _ = known
    save_shifts(studio, TOOL, parse_shifts("day 6-18, night 18-6"), SYSTEM)
    assert filter_options(studio, TOOL).shifts == [Shift("day", 6, 18), Shift("night", 18, 6)]
    by_shift = {name: load_dashboard(studio, AnalyticsFilter(TOOL, WEEK.start, WEEK.end, shift=name)).kpis.inspections
                for name in ("day", "night")}
    assert by_shift == {"day": 6, "night": 4}  # day: 07, 15, 06, 13:59, 10, 12 o'clock


def test_parse_shifts() -> None:
    assert parse_shifts("early 6-14, late 14-22, night 22-6") == list(DEFAULT_SHIFTS)
    assert parse_shifts("all 0-24") == [Shift("all", 0, 0)]
    for bad, message in [("early 6", "must look like"), ("x 25-3", "hours must be"), ("x 5-5", "hours must be"),
                         ("a 1-2, a 3-4", "given twice"), (" , ", "at least one shift")]:
        with pytest.raises(InvalidInputError, match=message):
            parse_shifts(bad)


def test_histograms_of_scores_and_latency(known: tuple[Studio, int, list[int]]) -> None:
    studio, _, _ = known
    board = load_dashboard(studio, WEEK)
    latency = board.latency
    # bins of ln(1 + ms) 1/20 wide: 10 ms is in bin floor(20 ln 11) = 47 [e^2.35 - 1, e^2.4 - 1), 100 in 92
    assert latency["from_ms"].iloc[0] == pytest.approx(math.exp(47 / 20) - 1)  # 9.49
    assert latency["to_ms"].iloc[-1] == pytest.approx(math.exp(93 / 20) - 1)  # 103.6
    assert len(latency) == 92 - 47 + 1 and latency["count"].sum() == 10
    assert (latency["count"] <= 1).all()  # each of 10, 20, ..., 100 ms in a bin of its own
    scores = board.scores_over_time
    assert scores["count"].sum() == 10
    tuesday = scores[scores["bucket"] == pd.Timestamp(2024, 3, 5)]
    assert tuesday[["score_from", "count"]].values.tolist() == [[pytest.approx(0.9), 1]]  # 0.92
    monday = scores[scores["bucket"] == pd.Timestamp(2024, 3, 4)]
    assert monday[["score_from", "count"]].values.tolist() == [[pytest.approx(0.1), 2]]  # 0.11, 0.12


def test_drift_against_the_training_reference(known: tuple[Studio, int, list[int]]) -> None:
    studio, version, _ = known
    drift = load_dashboard(studio, WEEK).drift
    assert drift is not None and drift.model_version_id == version
    assert "training-time scores" in drift.reference_source and "4 good training images" in drift.reference_source
    assert (drift.n_reference, drift.n_recent) == (4, 4)  # passes 0.11, 0.12, 0.31, 0.33
    # PSI bands of 0.05: reference 0.25 | 0.5 | 0.25 in bands 0, 1, 2; recent 0.5 in band 2, 0.5 in band 6;
    # empty bands count as 1e-4.
    floor = 1e-4
    expected = ((floor - 0.25) * math.log(floor / 0.25) + (floor - 0.5) * math.log(floor / 0.5)
                + (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.5 - floor) * math.log(0.5 / floor))
    assert drift.psi == pytest.approx(expected, rel=1e-12)
    # KS: from 0.07 to 0.11 the reference has 3/4 of its scores below, the recent passes none
    assert drift.ks == pytest.approx(0.75)
    assert drift.drifted and not drift.reliable
    loose = load_dashboard(studio, WEEK, warning_psi=expected + 0.01).drift
    assert loose is not None and not loose.drifted


def test_drift_falls_back_to_the_first_days_in_service(any_studio: Studio) -> None:
    create_tool(any_studio, TOOL, "good,crack", actor=SYSTEM)
    version = add_version(any_studio, {})
    first_days = [(timedelta(hours=h), "A", "pass", "good", s, 1.0, None)
                  for h, s in [(0, 0.11), (24, 0.12), (71, 0.31), (72, 0.99)]]  # the last is 3 days later
    later = [(timedelta(days=10, hours=h), "A", "pass", "good", s, 1.0, None)
             for h, s in [(1, 0.11), (2, 0.12), (3, 0.31)]]
    add(any_studio, first_days + later, version)
    with any_studio.transaction() as session:
        scope = AnalyticsFilter(TOOL, date(2024, 3, 14), date(2024, 3, 14)).scope(session)
        report = drift_report(session, scope, version)
    assert f"first {REFERENCE_DAYS} days in service" in report.reference_source
    assert "2024-03-04 00:00 to 2024-03-07 00:00" in report.reference_source
    assert (report.n_reference, report.n_recent) == (3, 3)
    assert report.psi == pytest.approx(0.0) and report.ks == pytest.approx(0.0)


def test_statistics_of_histograms() -> None:
    same = score_histogram([0.1, 0.2, 0.3])
    assert len(same) == FINE_BINS and same.sum() == 3
    assert score_histogram([1.0, 0.0])[[0, -1]].tolist() == [1, 1]  # 1.0 goes to the last bin
    assert psi(same, same) == 0.0 and ks(same, same) == 0.0
    assert ks(score_histogram([0.1]), score_histogram([0.9])) == 1.0


def test_an_empty_selection(known: tuple[Studio, int, list[int]]) -> None:
    studio, _, _ = known
    board: Dashboard = load_dashboard(studio, AnalyticsFilter(TOOL, date(2020, 1, 1), date(2020, 1, 31)))
    k = board.kpis
    assert (k.inspections, k.defect_rate, k.review_rate, k.agreement,
            k.latency_median_ms) == (0, None, None, None, None)
    assert board.rate_over_time.empty and board.pareto.empty and board.confusion.empty and board.recent.empty
    assert board.latency.empty and board.scores_over_time.empty
    assert board.drift is not None and board.drift.psi is None and board.drift.n_recent == 0


def test_recent_inspections_newest_first(known: tuple[Studio, int, list[int]]) -> None:
    studio, _, ids = known
    recent = load_dashboard(studio, WEEK, recent_limit=3).recent
    assert recent["id"].tolist() == ids[::-1][:3]
    assert recent["verdict"].tolist()[2] is None or pd.isna(recent["verdict"].tolist()[2])
    seventh = load_dashboard(studio, WEEK).recent.set_index("id").loc[ids[6]]
    assert (seventh["decision"], seventh["verdict"], seventh["reviewer"]) == ("fail", "dent", "tester")


def test_csv_export_in_chunks(known: tuple[Studio, int, list[int]]) -> None:
    studio, _, ids = known
    out = io.StringIO()
    write_csv(studio, AnalyticsFilter(TOOL, WEEK.start, WEEK.end, station="A"), out, chunk_rows=2)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == CSV_COLUMNS
    expected = [i for i, row in zip(ids, PERIOD, strict=True) if row[1] == "A"]
    assert [int(r["id"]) for r in rows] == expected  # oldest first
    assert [r["verdict"] for r in rows] == ["", "", "", "dent", "dent", ""]
    assert rows[0]["created_at"] == "2024-03-04 07:00:00"


def test_scope_covers_whole_utc_days() -> None:
    tool = Tool(id=7, name=TOOL, settings={})
    scope = AnalyticsFilter(TOOL, date(2024, 2, 28), date(2024, 2, 29), station="B").scope(None, tool)
    assert scope == InspectionScope(7, datetime(2024, 2, 28), datetime(2024, 3, 1), station="B")
    with pytest.raises(InvalidInputError, match="ends"):
        AnalyticsFilter(TOOL, date(2024, 3, 2), date(2024, 3, 1))


def test_cli_exports_the_selection(known: tuple[Studio, int, list[int]], tmp_path, monkeypatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from core import cli

    studio, _, ids = known
    monkeypatch.setattr(cli, "open_studio", lambda: studio)
    out = tmp_path / "night.csv"
    assert cli.main(["analytics", "export", "--tool", TOOL, "--from", "2024-03-04", "--to", "2024-03-10",
                     "--shift", "night", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [int(r["id"]) for r in rows] == [ids[2], ids[5], ids[7], ids[9]]  # 23:30, 02:00, 22:00, 23:59:59
    assert cli.main(["analytics", "export", "--tool", TOOL, "--from", "2024-03-10", "--to", "2024-03-04"]) == 1
    assert "ends (2024-03-04) before it starts" in capsys.readouterr().err
