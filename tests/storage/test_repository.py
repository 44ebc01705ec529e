"""storage.repository on SQLite and PostgreSQL (via the ``any_studio`` fixture)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from core.studio import Studio
from storage import repository as repo
from storage import versions as versions_repo
from storage.tables import Inspection, ModelVersion, Sample, Tool


def new_tool(studio: Studio, name: str, classes: list[str] | None = None) -> int:
    with studio.transaction() as session:
        return repo.add_tool(session, name, classes or ["good", "crack"], "good").id


def new_sample(studio: Studio, tool_id: int, sha256: str, label: str = "good") -> int:
    with studio.transaction() as session:
        return repo.add_sample(session, tool_id=tool_id, image_key=f"{sha256[:2]}/{sha256[2:4]}/{sha256}.png",
                               sha256=sha256, label=label, source="upload", width=4, height=4).id


def new_version(studio: Studio, tool_id: int) -> int:
    with studio.transaction() as session:
        return repo.add_model_version(session, tool_id=tool_id, method="classifier", profile="fast",
                                      status="candidate", metrics={"accuracy": 0.9}, artifact_dir="a",
                                      train_seconds=1.5, n_samples=10).id


def new_inspection(studio: Studio, tool_id: int, created_at: datetime, decision: str = "pass",
                   needs_review: bool | None = None) -> int:
    fields: dict[str, Any] = dict(tool_id=tool_id, decision=decision, label="good", score=0.1,
                                  scores={"good": 0.9}, latency_ms=3.0, created_at=created_at,
                                  needs_review=decision == "review" if needs_review is None else needs_review)
    with studio.transaction() as session:
        return repo.add_inspection(session, **fields).id


# --- tools ---------------------------------------------------------------------------------------
def test_tools_add_get_and_list(any_studio: Studio) -> None:
    zeta = new_tool(any_studio, "zeta", ["good", "crack", "stain"])
    alpha = new_tool(any_studio, "alpha")
    with any_studio.transaction() as session:
        tool = repo.get_tool(session, "zeta")
        assert tool is not None and tool.id == zeta
        assert tool.class_names == ["good", "crack", "stain"]
        assert tool.good_class == "good" and tool.settings == {}
        assert versions_repo.active_versions(session, tool.id) == {}  # no active model of any method
        assert isinstance(tool.created_at, datetime)
        assert repo.get_tool(session, "missing") is None
        assert repo.get_tool_by_id(session, alpha).name == "alpha"
        assert repo.get_tool_by_id(session, 10_000) is None
        assert [t.name for t in repo.list_tools(session)] == ["alpha", "zeta"]


def test_tool_names_are_unique(any_studio: Studio) -> None:
    new_tool(any_studio, "same")
    with pytest.raises(IntegrityError):
        new_tool(any_studio, "same")
    with any_studio.transaction() as session:
        assert len(repo.list_tools(session)) == 1


# --- samples -------------------------------------------------------------------------------------
def test_samples_are_unique_per_tool_and_hash(any_studio: Studio) -> None:
    first, second = new_tool(any_studio, "first"), new_tool(any_studio, "second")
    sha = "ab" * 32
    new_sample(any_studio, first, sha)
    with pytest.raises(IntegrityError):
        new_sample(any_studio, first, sha, label="crack")
    new_sample(any_studio, second, sha)  # the same image may belong to another tool
    new_sample(any_studio, first, "cd" * 32, label="crack")

    with any_studio.transaction() as session:
        assert repo.sample_exists(session, first, sha)
        assert repo.sample_exists(session, second, sha)
        assert not repo.sample_exists(session, second, "cd" * 32)
        assert repo.class_counts(session, first) == {"good": 1, "crack": 1}
        assert repo.class_counts(session, second) == {"good": 1}
        assert session.query(Sample).count() == 3


def test_deleted_samples_are_not_listed_or_counted(any_studio: Studio) -> None:
    tool = new_tool(any_studio, "t")
    keep = new_sample(any_studio, tool, "01" * 32)
    gone = new_sample(any_studio, tool, "02" * 32)
    newest = new_sample(any_studio, tool, "03" * 32, label="crack")
    with any_studio.transaction() as session:
        session.get(Sample, gone).deleted = True
    with any_studio.transaction() as session:
        assert [s.id for s in repo.list_samples(session, tool)] == [newest, keep]  # newest first
        assert [s.id for s in repo.list_samples(session, tool, limit=1)] == [newest]
        assert repo.class_counts(session, tool) == {"good": 1, "crack": 1}


# --- model versions ------------------------------------------------------------------------------
def test_activation_retires_the_previously_active_version(any_studio: Studio) -> None:
    tool_id, other_tool = new_tool(any_studio, "t"), new_tool(any_studio, "other")
    v1, v2, v3 = (new_version(any_studio, tool_id) for _ in range(3))
    other = new_version(any_studio, other_tool)

    def activate(tid: int, vid: int) -> None:
        with any_studio.transaction() as session:
            repo.activate_model_version(session, session.get(Tool, tid), session.get(ModelVersion, vid))

    activate(other_tool, other)
    activate(tool_id, v1)
    activate(tool_id, v2)
    with any_studio.transaction() as session:
        statuses = {v.id: v.status for v in repo.list_model_versions(session, tool_id)}
        assert statuses == {v1: "retired", v2: "active", v3: "candidate"}
        assert [v.id for v in repo.list_model_versions(session, tool_id)] == [v3, v2, v1]
        assert {m: v.id for m, v in versions_repo.active_versions(session, tool_id).items()} == {"classifier": v2}
        # another tool's active model is untouched
        assert repo.get_model_version(session, other).status == "active"
        assert {m: v.id for m, v in versions_repo.active_versions(session, other_tool).items()} == {"classifier": other}

    activate(tool_id, v3)
    with any_studio.transaction() as session:
        statuses = {v.id: v.status for v in repo.list_model_versions(session, tool_id)}
        assert statuses == {v1: "retired", v2: "retired", v3: "active"}
        assert {m: v.id for m, v in versions_repo.active_versions(session, tool_id).items()} == {"classifier": v3}
        assert session.query(ModelVersion).filter_by(tool_id=tool_id, status="active").count() == 1


# --- review queue --------------------------------------------------------------------------------
def test_review_queue_is_oldest_first_without_reviewed_or_foreign_items(any_studio: Studio) -> None:
    tool_id, other_tool = new_tool(any_studio, "t"), new_tool(any_studio, "other")
    t0 = datetime(2024, 5, 1, 12, 0, 0)
    newest = new_inspection(any_studio, tool_id, t0 + timedelta(hours=3), "review")
    oldest = new_inspection(any_studio, tool_id, t0, "review")
    reviewed = new_inspection(any_studio, tool_id, t0 - timedelta(hours=1), "review")
    middle = new_inspection(any_studio, tool_id, t0 + timedelta(hours=1), "review")
    new_inspection(any_studio, tool_id, t0 - timedelta(hours=2), "fail")  # does not need review
    new_inspection(any_studio, tool_id, t0 - timedelta(hours=2), "pass")
    new_inspection(any_studio, other_tool, t0 - timedelta(hours=5), "review")  # another tool
    with any_studio.transaction() as session:
        repo.add_review(session, reviewed, "good", "ana")

    with any_studio.transaction() as session:
        assert [i.id for i in repo.review_queue(session, tool_id)] == [oldest, middle, newest]
        assert [i.id for i in repo.review_queue(session, tool_id, limit=2)] == [oldest, middle]
        assert repo.count_review_queue(session, tool_id) == 3
        assert repo.count_review_queue(session, other_tool) == 1
        review = repo.get_inspection(session, reviewed).review
        assert review is not None and review.verdict == "good" and review.reviewer == "ana"


def test_an_inspection_takes_one_review_only(any_studio: Studio) -> None:
    tool_id = new_tool(any_studio, "t")
    inspection = new_inspection(any_studio, tool_id, datetime(2024, 5, 1), "review")
    with any_studio.transaction() as session:
        repo.add_review(session, inspection, "good", "a")
    with pytest.raises(IntegrityError):
        with any_studio.transaction() as session:
            repo.add_review(session, inspection, "crack", "b")
    with any_studio.transaction() as session:
        assert repo.get_inspection(session, inspection).review.verdict == "good"


# --- daily statistics ----------------------------------------------------------------------------
def as_date(value: Any) -> date:
    """SQLite returns the day as text, PostgreSQL as a date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def test_daily_inspection_stats_groups_by_calendar_day(any_studio: Studio) -> None:
    tool_id, other_tool = new_tool(any_studio, "t"), new_tool(any_studio, "other")
    day1, day2, day3 = datetime(2024, 3, 9), datetime(2024, 3, 10), datetime(2024, 3, 11)
    rows = [
        # day 1: 3 inspections, 1 fail, 1 review (the last one a second before midnight)
        (day1 + timedelta(hours=8), "pass"),
        (day1 + timedelta(hours=12, minutes=30), "fail"),
        (day1 + timedelta(hours=23, minutes=59, seconds=59), "review"),
        # day 2: 4 inspections, 2 fail, 1 review (the first exactly at midnight)
        (day2, "fail"),
        (day2 + timedelta(hours=1), "pass"),
        (day2 + timedelta(hours=13), "review"),
        (day2 + timedelta(hours=23), "fail"),
        # day 3: 2 inspections, no fail, 2 review
        (day3 + timedelta(hours=6), "review"),
        (day3 + timedelta(hours=7, microseconds=500), "review"),
    ]
    for created_at, decision in rows:
        new_inspection(any_studio, tool_id, created_at, decision)
    # outside the range or another tool: never counted
    new_inspection(any_studio, tool_id, day1 - timedelta(microseconds=1), "fail")
    new_inspection(any_studio, tool_id, day3 + timedelta(days=1), "fail")
    new_inspection(any_studio, other_tool, day2 + timedelta(hours=2), "fail")

    with any_studio.transaction() as session:
        stats = repo.daily_inspection_stats(session, tool_id, day1, day3 + timedelta(days=1))
    assert [(as_date(d), n, f, r) for d, n, f, r in stats] == [
        (date(2024, 3, 9), 3, 1, 1),
        (date(2024, 3, 10), 4, 2, 1),
        (date(2024, 3, 11), 2, 0, 2),
    ]

    with any_studio.transaction() as session:  # the end bound is exclusive
        stats = repo.daily_inspection_stats(session, tool_id, day1, day2)
        assert [(as_date(d), n, f, r) for d, n, f, r in stats] == [(date(2024, 3, 9), 3, 1, 1)]
        stats = repo.daily_inspection_stats(session, tool_id, day2, day2 + timedelta(seconds=1))
        assert [(as_date(d), n, f, r) for d, n, f, r in stats] == [(date(2024, 3, 10), 1, 1, 0)]
        assert repo.daily_inspection_stats(session, tool_id, datetime(2023, 1, 1), datetime(2023, 2, 1)) == []


def test_inspection_defaults(any_studio: Studio) -> None:
    tool_id = new_tool(any_studio, "t")
    with any_studio.transaction() as session:
        inspection = repo.add_inspection(session, tool_id=tool_id, decision="pass", label="good", score=0.0,
                                         scores={"good": 1.0}, latency_ms=1.0)
        inspection_id = inspection.id
    with any_studio.transaction() as session:
        stored = session.get(Inspection, inspection_id)
        assert stored.station == "default" and stored.needs_review is False and stored.image_key is None
        assert stored.model_version_id is None and stored.review is None
        assert stored.scores == {"good": 1.0}
        assert abs((datetime.now(UTC).replace(tzinfo=None) - stored.created_at).total_seconds()) < 60  # naive UTC
