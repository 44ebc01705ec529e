"""core.reviews: the queue of inspections awaiting a person, and verdicts becoming samples."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.audit import SYSTEM
from core.auth.roles import Role
from core.errors import InvalidInputError, NotFoundError
from core.reviews import Reviewer, review_queue, submit_review
from core.samples import class_counts, import_path
from core.studio import Studio
from core.tools import create_tool
from storage import repository as repo
from storage.tables import Review, Sample
from tests.actors import OPERATOR

TOOL = "cells"
T0 = datetime(2024, 6, 1, 8, 0, 0)


def record(studio: Studio, created_at: datetime, decision: str = "review", image: Path | None = None,
           tool: str = TOOL, label: str = "good") -> int:
    """An inspection as the inference service stores it: the image (if any) in the store first."""
    key = studio.images.put(image.read_bytes(), "png")[0] if image is not None else None
    with studio.transaction() as session:
        tool_row = repo.get_tool(session, tool)
        return repo.add_inspection(
            session, tool_id=tool_row.id, created_at=created_at, decision=decision, label=label,
            score=0.55, scores={"good": 0.45, "defective": 0.55}, latency_ms=12.5, image_key=key,
            needs_review=decision == "review",
        ).id


@pytest.fixture
def cells(any_studio: Studio) -> Studio:
    create_tool(any_studio, TOOL, "good,defective", actor=SYSTEM)
    create_tool(any_studio, "other", "good,dent", actor=SYSTEM)
    return any_studio


def samples(studio: Studio) -> list[tuple[str, str, str, int, int]]:
    with studio.transaction() as session:
        rows = session.execute(select(Sample.image_key, Sample.label, Sample.source, Sample.width, Sample.height)
                               .order_by(Sample.id))
        return [tuple(r) for r in rows]


def test_queue_is_oldest_first_and_counts_everything(cells: Studio, elpv_subset: Path) -> None:
    image = sorted((elpv_subset / "defective").glob("*.png"))[0]
    third = record(cells, T0 + timedelta(minutes=30), image=image)
    first = record(cells, T0 - timedelta(days=1))
    second = record(cells, T0)
    record(cells, T0 - timedelta(days=2), decision="fail")  # decided, not queued
    record(cells, T0 - timedelta(days=3), tool="other")  # another tool's queue

    items, total = review_queue(cells, TOOL)
    assert [i.inspection_id for i in items] == [first, second, third]
    assert total == 3
    assert items[0].created_at == T0 - timedelta(days=1)
    assert items[0].decision == "review" and items[0].scores == {"good": 0.45, "defective": 0.55}
    assert items[0].image_key is None and items[2].image_key is not None
    assert cells.images.read(items[2].image_key) == image.read_bytes()

    items, total = review_queue(cells, TOOL, limit=2)
    assert [i.inspection_id for i in items] == [first, second] and total == 3
    assert [i.inspection_id for i in review_queue(cells, "other")[0]] != []


def test_submit_review_turns_the_kept_image_into_a_sample(cells: Studio, elpv_subset: Path) -> None:
    image = sorted((elpv_subset / "defective").glob("*.png"))[3]
    inspection = record(cells, T0, image=image)
    other = record(cells, T0 + timedelta(minutes=1))

    review_id = submit_review(cells, inspection, "defective", reviewer=Reviewer("maria", role=Role.OPERATOR))

    with cells.transaction() as session:
        review = session.get(Review, review_id)
        assert (review.inspection_id, review.verdict, review.reviewer) == (inspection, "defective", "maria")
        key = repo.get_inspection(session, inspection).image_key
    assert samples(cells) == [(key, "defective", "review", 300, 300)]
    assert class_counts(cells, TOOL) == {"good": 0, "defective": 1}
    items, total = review_queue(cells, TOOL)
    assert [i.inspection_id for i in items] == [other] and total == 1


def test_review_without_a_kept_image_adds_no_sample(cells: Studio) -> None:
    inspection = record(cells, T0)
    submit_review(cells, inspection, "good", OPERATOR)
    assert samples(cells) == []
    assert review_queue(cells, TOOL) == ([], 0)


def test_review_of_an_image_that_is_already_a_sample(cells: Studio, elpv_subset: Path) -> None:
    image = sorted((elpv_subset / "good").glob("*.png"))[0]
    import_path(cells, TOOL, image, label="good", actor=SYSTEM)
    inspection = record(cells, T0, image=image)
    submit_review(cells, inspection, "defective", OPERATOR)
    rows = samples(cells)
    assert len(rows) == 1 and rows[0][1:3] == ("good", "import")  # the existing sample is kept as is


def test_reviewing_twice_is_refused(cells: Studio, elpv_subset: Path) -> None:
    inspection = record(cells, T0, image=sorted((elpv_subset / "good").glob("*.png"))[1])
    submit_review(cells, inspection, "good", reviewer=Reviewer("first", role=Role.OPERATOR))
    before = samples(cells)
    with pytest.raises(InvalidInputError, match="already reviewed"):
        submit_review(cells, inspection, "defective", reviewer=Reviewer("second", role=Role.OPERATOR))
    with cells.transaction() as session:
        reviews = session.scalars(select(Review)).all()
        assert [(r.verdict, r.reviewer) for r in reviews] == [("good", "first")]
    assert samples(cells) == before


def test_verdict_must_be_a_class_of_the_tool(cells: Studio, elpv_subset: Path) -> None:
    inspection = record(cells, T0, image=sorted((elpv_subset / "good").glob("*.png"))[2])
    for verdict in ("dent", "scratch"):  # 'dent' is a class of another tool only
        with pytest.raises(InvalidInputError, match="is not a class of tool 'cells'"):
            submit_review(cells, inspection, verdict, OPERATOR)
    assert samples(cells) == []
    assert review_queue(cells, TOOL)[1] == 1  # still waiting


def test_unknown_inspection_and_tool(cells: Studio) -> None:
    with pytest.raises(NotFoundError, match="no inspection 999"):
        submit_review(cells, 999, "good", OPERATOR)
    with pytest.raises(NotFoundError, match="tools: cells, other"):
        review_queue(cells, "missing")
