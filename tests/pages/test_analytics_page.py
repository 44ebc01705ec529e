"""The analytics page under AppTest on real SQLite studios: empty, tiny (known numbers) and large data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from core.analytics.dashboard import load_dashboard
from core.analytics.filters import AnalyticsFilter
from core.audit import SYSTEM
from core.studio import Studio
from core.tools import create_tool
from storage import repository as repo
from storage.tables import utc_now
from tests.pages.test_pages import ELPV, _use, metrics, open_page, texts  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
TOOL = "cells"
# (days before today, hour, station, decision, label, score, latency, operator's verdict, keep the image)
TINY = [
    (6, 7, "A", "pass", "good", 0.11, 10.0, None, False),
    (6, 15, "A", "pass", "good", 0.12, 20.0, None, False),
    (5, 23, "B", "fail", "crack", 0.92, 30.0, "crack", True),
    (4, 6, "A", "fail", "crack", 0.81, 40.0, None, False),
    (4, 13, "B", "review", "dent", 0.56, 50.0, "good", False),
    (3, 2, "A", "review", "crack", 0.52, 60.0, "dent", False),
    (2, 10, "A", "fail", "dent", 0.72, 70.0, "dent", False),
    (1, 22, "B", "pass", "good", 0.31, 80.0, None, False),
    (0, 0, "A", "pass", "good", 0.33, 90.0, None, False),
    (0, 1, "B", "fail", "crack", 0.96, 100.0, None, False),
    # the previous 30 days: 2 inspections, one failed
    (35, 12, "A", "pass", "good", 0.11, 5.0, None, False),
    (40, 12, "A", "fail", "crack", 0.92, 15.0, None, False),
]


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    studio = _use(tmp_path / "data", monkeypatch)
    yield studio
    studio.engine.dispose()


def _tiny(studio: Studio) -> None:
    create_tool(studio, TOOL, "good,crack,dent", actor=SYSTEM)
    today = datetime.combine(utc_now().date(), time.min)
    image_key, _ = studio.images.put(sorted((ELPV / "defective").glob("*.png"))[0].read_bytes(), "png")
    with studio.transaction() as session:
        tool = repo.get_tool(session, TOOL)
        version = repo.add_model_version(session, tool_id=tool.id, method="classifier", profile="fast", status="active",
                                         metrics={"reference_scores": [0.02, 0.07, 0.07, 0.12]}, artifact_dir="x",
                                         train_seconds=1.0, n_samples=4)
        for days, hour, station, decision, label, score, latency, verdict, keep in TINY:
            inspection = repo.add_inspection(
                session, tool_id=tool.id, station=station, model_version_id=version.id,
                created_at=today - timedelta(days=days) + timedelta(hours=hour, minutes=30), decision=decision,
                label=label, score=score, scores={}, latency_ms=latency, image_key=image_key if keep else None,
                needs_review=decision == "review")
            if verdict:
                repo.add_review(session, inspection.id, verdict, "tester")


def test_a_tool_without_inspections(studio: Studio) -> None:
    create_tool(studio, TOOL, "good,crack", actor=SYSTEM)
    at = open_page("analytics")
    assert texts(at.info) == ["No inspections in this period."]
    assert not at.metric
    assert [s.label for s in at.main.selectbox] == ["Station", "Model version", "Shift", "Time buckets"]


def test_tiny_data_shows_the_hand_computed_kpis(studio: Studio) -> None:
    _tiny(studio)
    at = open_page("analytics")
    shown = {m.label: (m.value, m.delta) for m in at.metric}
    assert shown["Inspections"] == ("10", "+8")
    assert shown["Defect rate"] == ("40.0%", "-10.0 pp")  # 4 / 10 against 1 / 2
    assert shown["Review rate"] == ("20.0%", "+20.0 pp")
    assert shown["Agreement"] == ("50.0%", "")  # 2 of 4 reviews; none before
    # from the rollup's latency bins: within 2.53 % of 1 + ms of the exact 55.0 (median) and 95.5 (p95)
    for name, exact in (("Median latency", 55.0), ("p95 latency", 95.5)):
        assert abs(float(shown[name][0].removesuffix(" ms")) - exact) <= 0.0253 * (1 + 100)
    assert shown["Passes compared"][0] == "4"
    assert [s.value for s in at.subheader] == [
        "Defect rate over time", "Pareto of defect classes", "Model vs operator", "Score distribution over time",
        "Latency", "Drift of pass scores", "Recent inspections", "Stations and lines"]
    assert len(at.warning) == 1 and at.warning[0].value.startswith("Drift: PSI")
    recent = at.dataframe[0].value
    assert len(recent) == 10
    assert recent["thumbnail"].notna().sum() == 1  # the one kept image
    assert recent["thumbnail"].dropna().iloc[0].startswith("data:image/jpeg;base64,")
    assert any("training-time scores" in c.value for c in at.caption)

    at.selectbox(key="analytics-station").set_value("B").run()
    assert not at.exception
    assert metrics(at)["Inspections"] == "4"
    at.selectbox(key="analytics-station").set_value("All")
    at.selectbox(key="analytics-shift").set_value("night").run()
    assert metrics(at)["Inspections"] == "5"  # 23:30, 02:30, 22:30, 00:30, 01:30
    at.number_input(key="analytics-psi").set_value(20.0).run()  # the PSI here is about 10.6
    assert not at.warning


def test_saving_shifts_changes_the_shift_filter(studio: Studio) -> None:
    _tiny(studio)
    at = open_page("analytics")
    at.text_input(key="analytics-shifts-text").set_value("day 6-18, night 18-6")
    next(b for b in at.button if b.label == "Save shifts").click().run()
    assert not at.exception
    assert at.selectbox(key="analytics-shift").options == ["All", "day 06-18", "night 18-06"]
    at.selectbox(key="analytics-shift").set_value("day").run()
    assert metrics(at)["Inspections"] == "5"  # 07:30, 15:30, 06:30, 13:30, 10:30

    at.text_input(key="analytics-shifts-text").set_value("nonsense")
    next(b for b in at.button if b.label == "Save shifts").click().run()
    assert "must look like 'early 6-14'" in at.error[0].value


def test_large_data(studio: Studio) -> None:
    sys.path.insert(0, str(ROOT))
    from bench.analytics import TOOLS, seed

    seed(studio, 100_000, 365, utc_now())
    at = open_page("analytics")
    today = utc_now().date()
    expected = load_dashboard(studio, AnalyticsFilter(TOOLS[0], today - timedelta(days=29), today)).kpis
    assert expected.inspections > 1000
    assert metrics(at)["Inspections"] == f"{expected.inspections:,}"
    assert metrics(at)["Defect rate"] == f"{expected.defect_rate:.1%}"
    assert len(at.dataframe[0].value) == 50
    at.selectbox(key="analytics-grain").set_value("hour").run()
    assert not at.exception
