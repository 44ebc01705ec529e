"""core.reviews: queue priority and filters, claims with an expiry, skip, undo, audit rows, and
concurrent reviewers (threads and processes) on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from core.audit import SYSTEM, audit_log
from core.auth.roles import Role
from core.config import Settings
from core.errors import InvalidInputError
from core.reviews import (
    Reviewer,
    next_card,
    queue_counts,
    queue_for_review,
    skip,
    submit_review,
    suggest_for_review,
    undo_review,
)
from core.samples import class_counts
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import create_tool
from storage import repository as repo
from storage.tables import Inspection, Review, Sample, utc_now

TOOL = "cells"
T0 = datetime(2024, 6, 1, 8, 0, 0)


def person(name: str, device: str = "") -> Reviewer:
    """A reviewer with the operator role."""
    return Reviewer(name, device, role=Role.OPERATOR)


def record(studio: Studio, created_at: datetime, decision: str = "review", *, opinions: dict | None = None,
           degraded: bool = False, tool: str = TOOL, image: Path | None = None, score: float = 0.5,
           needs_review: bool = True) -> int:
    key = studio.images.put(image.read_bytes(), "png")[0] if image is not None else None
    with studio.transaction() as session:
        tool_id = repo.get_tool(session, tool).id
        return repo.add_inspection(
            session, tool_id=tool_id, created_at=created_at, decision=decision, label="good", score=score,
            scores={"good": 1 - score, "defective": score}, latency_ms=10.0, image_key=key,
            opinions=opinions or {}, degraded=degraded, needs_review=needs_review).id


@pytest.fixture
def cells(any_studio: Studio) -> Studio:
    create_tool(any_studio, TOOL, "good,defective,crack", actor=SYSTEM)
    create_tool(any_studio, "other", "good,dent", actor=SYSTEM)
    return any_studio


def drain(studio: Studio, reviewer: Reviewer, **scope) -> list[int]:
    """Claim and answer every card the reviewer can get; the inspection ids in order."""
    seen = []
    while (card := next_card(studio, reviewer, **scope)) is not None:
        seen.append(card.inspection_id)
        submit_review(studio, card.inspection_id, "good", reviewer)
    return seen


def test_priority_then_age_and_filters(cells: Studio) -> None:
    disagree = {"classifier": {"decision": "pass", "score": 0.2}, "anomaly": {"decision": "fail", "score": 0.9}}
    agree = {"classifier": {"decision": "pass", "score": 0.2}, "anomaly": {"decision": "pass", "score": 0.1}}
    audit_old = record(cells, T0 - timedelta(days=5), "pass", opinions=agree)
    degraded = record(cells, T0 - timedelta(days=4), "fail", degraded=True)
    uncertain_new = record(cells, T0 + timedelta(hours=1))
    uncertain_old = record(cells, T0)
    disagreement = record(cells, T0 + timedelta(days=1), "pass", opinions=disagree)
    record(cells, T0 - timedelta(days=9), "fail", needs_review=False)  # decided: not queued
    other = record(cells, T0 - timedelta(days=9), tool="other")

    assert queue_counts(cells, TOOL) == {"disagreement": 1, "uncertain": 2, "degraded": 1, "audit": 1}
    assert drain(cells, person("ana"), tool_name=TOOL, start=T0, end=T0 + timedelta(hours=2)) == \
        [uncertain_old, uncertain_new]
    assert drain(cells, person("ana"), tool_name=TOOL) == [disagreement, degraded, audit_old]
    assert drain(cells, person("ana")) == [other]  # no tool filter: every tool


def test_two_reviewers_never_share_a_card_and_expired_claims_return(cells: Studio) -> None:
    first, second = record(cells, T0), record(cells, T0 + timedelta(minutes=1))
    ana, ben, carl = person("ana", "tablet-1"), person("ben", "tablet-2"), person("carl", "pc")
    assert next_card(cells, ana, TOOL).inspection_id == first
    assert next_card(cells, ana, TOOL).inspection_id == first  # a reload shows the same card
    assert next_card(cells, ben, TOOL).inspection_id == second
    assert next_card(cells, carl, TOOL) is None  # both claimed
    with pytest.raises(InvalidInputError, match="being reviewed on another device"):
        submit_review(cells, first, "good", carl)

    with cells.transaction() as session:  # ana's tablet went away: her claim expires
        session.execute(update(Inspection).where(Inspection.id == first)
                        .values(claim_expires_at=utc_now() - timedelta(seconds=1)))
    assert next_card(cells, carl, TOOL).inspection_id == first
    submit_review(cells, first, "crack", carl)
    with pytest.raises(InvalidInputError, match="already reviewed"):
        submit_review(cells, first, "good", ana)


def test_skip_releases_the_card_and_excludes_it_for_the_skipper(cells: Studio) -> None:
    first, second = record(cells, T0), record(cells, T0 + timedelta(minutes=1))
    ana, ben = person("ana", "tablet-1"), person("ben", "tablet-2")
    assert next_card(cells, ana, TOOL).inspection_id == first
    skip(cells, first, ana)
    assert next_card(cells, ana, TOOL, exclude=[first]).inspection_id == second
    assert next_card(cells, ben, TOOL).inspection_id == first  # free again for someone else
    assert [(r.action, r.actor, r.device, r.target) for r in audit_log(cells, TOOL)] == \
        [("skip", "ana", "tablet-1", f"inspection {first}")]


def test_verdict_undo_and_their_audit_rows(cells: Studio, elpv_subset: Path) -> None:
    image = sorted((elpv_subset / "defective").glob("*.png"))[0]
    first = record(cells, T0, image=image)
    second = record(cells, T0 + timedelta(minutes=1))
    ana = person("ana", "tablet-1")
    change_settings(cells, TOOL, Reviewer("eng", role=Role.ENGINEER), {"holdout_share": 0.0})
    card = next_card(cells, ana, TOOL)
    assert (card.inspection_id, card.reason, card.classes) == (first, "uncertain", ["good", "defective", "crack"])
    review_id = submit_review(cells, first, "crack", ana)
    assert class_counts(cells, TOOL)["crack"] == 1
    assert next_card(cells, ana, TOOL).inspection_id == second

    assert undo_review(cells, review_id, ana) == first
    assert class_counts(cells, TOOL)["crack"] == 0
    with cells.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 0
        assert session.scalar(select(func.count()).select_from(Sample)) == 0
    assert next_card(cells, ana, TOOL).inspection_id == first  # the undone card comes back first
    submit_review(cells, first, "defective", ana)

    rows = [(r.action, r.actor, r.device, r.target, r.details.get("verdict")) for r in audit_log(cells, TOOL)]
    assert rows == [("verdict", "ana", "tablet-1", f"inspection {first}", "defective"),
                    ("undo", "ana", "tablet-1", f"inspection {first}", "crack"),
                    ("verdict", "ana", "tablet-1", f"inspection {first}", "crack"),
                    ("settings", "eng", "", f"tool {TOOL}", None)]  # settings changes are audited too
    assert all(r.created_at <= utc_now() for r in audit_log(cells, TOOL))


def test_held_out_share_keeps_review_samples_out_of_training(cells: Studio, elpv_subset: Path) -> None:
    change_settings(cells, TOOL, Reviewer("eng", role=Role.ENGINEER), {"holdout_share": 1.0})
    inspection = record(cells, T0, image=sorted((elpv_subset / "good").glob("*.png"))[0])
    submit_review(cells, inspection, "good", person("ana"))
    with cells.transaction() as session:
        assert [(s.source, s.split) for s in session.scalars(select(Sample))] == [("review", "held_out")]
    with pytest.raises(InvalidInputError, match="between 0 and 1"):
        change_settings(cells, TOOL, Reviewer("eng", role=Role.ENGINEER), {"audit_share": 2})


def test_uncertainty_sampling_suggests_scores_near_the_threshold(cells: Studio, elpv_subset: Path) -> None:
    images = sorted((elpv_subset / "defective").glob("*.png"))
    far = record(cells, T0, "fail", image=images[0], score=0.97, needs_review=False)
    near = record(cells, T0, "fail", image=images[1], score=0.62, needs_review=False)
    record(cells, T0, "fail", score=0.55, needs_review=False)  # no image kept: nothing to show a person
    queued = record(cells, T0 - timedelta(hours=1), image=images[2], score=0.5)  # already in the queue
    assert [s.inspection_id for s in suggest_for_review(cells, TOOL)] == [near, far]
    assert queue_for_review(cells, [near], Reviewer("eng", role=Role.ENGINEER)) == 1
    assert [c.inspection_id for c in [next_card(cells, person("x"), TOOL)]] == [queued]
    assert queue_counts(cells, TOOL)["uncertain"] == 2
    assert [s.inspection_id for s in suggest_for_review(cells, TOOL)] == [far]


# --- concurrent reviewers ------------------------------------------------------------------------
N_ITEMS = 60


def _review_all(settings: Settings, name: str, start: Any, held: Any) -> list[tuple[int, str]]:
    """One reviewer (thread or process) answering cards until the queue is empty. It starts when every
    reviewer has opened its studio (``start``: a barrier) and answers its first card only when every
    reviewer holds one (``held``), so all of them race whatever the scheduler does."""
    studio = open_studio(settings)
    reviewer = person(name, f"device-{name}")
    done = []
    try:
        start.wait(timeout=120)
        first = True
        while (card := next_card(studio, reviewer, TOOL)) is not None:
            if first:
                held.wait(timeout=120)  # every reviewer holds a claim on a different card at this moment
                first = False
            submit_review(studio, card.inspection_id, "good", reviewer)  # raises if anyone else answered it
            done.append((card.inspection_id, name))
    finally:
        studio.engine.dispose()
    return done


def _check_each_reviewed_once(studio: Studio, ids: list[int], done: list[tuple[int, str]], workers: int) -> None:
    assert sorted(i for i, _ in done) == sorted(ids)  # none twice, none lost
    assert len({name for _, name in done}) == workers  # every reviewer held a card at the same moment
    with studio.transaction() as session:
        reviews = session.execute(select(Review.inspection_id, Review.reviewer)).all()
    assert sorted(reviews) == sorted(done)
    assert sum(queue_counts(studio, TOOL).values()) == 0
    assert len([r for r in audit_log(studio, TOOL, limit=1000) if r.action == "verdict"]) == len(ids)


def test_concurrent_reviewer_threads(cells: Studio) -> None:
    ids = [record(cells, T0 + timedelta(seconds=i)) for i in range(N_ITEMS)]
    done: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    start, held = threading.Barrier(4), threading.Barrier(4)

    def work(name: str) -> None:
        try:
            done.extend(_review_all(cells.settings, name, start, held))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    _check_each_reviewed_once(cells, ids, done, 4)


def test_concurrent_reviewer_processes(cells: Studio) -> None:
    ids = [record(cells, T0 + timedelta(seconds=i)) for i in range(N_ITEMS)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(3) as pool:
        start, held = manager.Barrier(3), manager.Barrier(3)
        results = pool.starmap(_review_all, [(cells.settings, f"p{i}", start, held) for i in range(3)])
    done = [pair for result in results for pair in result]
    _check_each_reviewed_once(cells, ids, done, 3)


def test_a_verdict_makes_a_sample_like_an_import_does(cells: Studio, elpv_subset: Path) -> None:
    """Thumbnail, perceptual hash, size and name: the dataset page and the near-duplicate check see a
    review sample as they see an imported one."""
    image = sorted((elpv_subset / "good").glob("*.png"))[0]
    inspection = record(cells, T0, image=image)
    submit_review(cells, inspection, "good", person("ana"))
    with cells.transaction() as session:
        sample = session.scalars(select(Sample)).one()
        assert sample.source == "review" and (sample.width, sample.height) == (300, 300)
        assert sample.thumb_key and len(sample.phash) == 16 and sample.original_name == f"inspection-{inspection}.png"
    assert cells.images.exists(sample.image_key)
