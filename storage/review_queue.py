"""The review queue in SQL: priority order, filters, and claims with an expiry.

A claim is a conditional UPDATE: it only takes a row whose claim is free (none, or expired), so two
reviewers never hold the same inspection. On PostgreSQL the candidate row is also locked with
``FOR UPDATE SKIP LOCKED`` so concurrent claimers pass over each other's rows instead of waiting;
SQLite serialises writers, and the same conditional UPDATE is safe there. Functions take a Session
and never commit.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.orm import Session

from storage.tables import QUEUE_PRIORITIES, Inspection, Review


@dataclass(frozen=True)
class QueueScope:
    """Which queued inspections a reviewer works on: a tool (or all) and a time window."""

    tool_id: int | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive


def _queued(scope: QueueScope, exclude: Collection[int] = ()) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Inspection.needs_review.is_(True),
        ~exists().where(Review.inspection_id == Inspection.id),
    ]
    if scope.tool_id is not None:
        conditions.append(Inspection.tool_id == scope.tool_id)
    if scope.start is not None:
        conditions.append(Inspection.created_at >= scope.start)
    if scope.end is not None:
        conditions.append(Inspection.created_at < scope.end)
    if exclude:
        conditions.append(Inspection.id.not_in(list(exclude)))
    return conditions


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(Inspection.claim_expires_at.is_(None), Inspection.claim_expires_at < now)


PRIORITY_ORDER = (Inspection.review_priority, Inspection.created_at, Inspection.id)


def queued(session: Session, scope: QueueScope, limit: int = 50) -> list[Inspection]:
    """Queued inspections in priority order (disagreement, uncertain, degraded, audit; then oldest)."""
    query = select(Inspection).where(*_queued(scope)).order_by(*PRIORITY_ORDER).limit(limit)
    return list(session.scalars(query))


def count_queued(session: Session, scope: QueueScope) -> dict[str, int]:
    """Queued inspections per reason (``disagreement``, ``uncertain``, ``degraded``, ``audit``)."""
    query = (select(Inspection.review_priority, func.count()).where(*_queued(scope))
             .group_by(Inspection.review_priority))
    by_rank = dict(session.execute(query).all())
    return {reason: int(by_rank.get(rank, 0)) for reason, rank in QUEUE_PRIORITIES.items()}


def held_claim(session: Session, claimant: str, scope: QueueScope, now: datetime,
               exclude: Collection[int] = ()) -> Inspection | None:
    """The first queued inspection ``claimant`` holds an unexpired claim on, if any."""
    query = (select(Inspection)
             .where(*_queued(scope, exclude), Inspection.claimed_by == claimant, Inspection.claim_expires_at >= now)
             .order_by(*PRIORITY_ORDER).limit(1))
    return session.scalar(query)


def claim_next(session: Session, claimant: str, scope: QueueScope, now: datetime, expires_at: datetime,
               exclude: Collection[int] = ()) -> int | None:
    """Claim the first free queued inspection for ``claimant`` until ``expires_at``; its id or None.

    One statement: ``UPDATE inspection SET claimed_by=.. WHERE id IN (SELECT id .. ORDER BY priority
    LIMIT 1 [FOR UPDATE SKIP LOCKED]) AND <claim free>``. None means the queue (in scope) has no free item.
    """
    candidate = select(Inspection.id).where(*_queued(scope, exclude), _free(now)).order_by(*PRIORITY_ORDER).limit(1)
    locked = candidate.with_for_update(skip_locked=True)
    for _ in range(20):  # a lost race (another claimer won the row first) is retried with the next row
        statement = (update(Inspection)
                     .where(Inspection.id.in_(locked), _free(now))
                     .values(claimed_by=claimant, claim_expires_at=expires_at)
                     .returning(Inspection.id)
                     .execution_options(synchronize_session=False))
        claimed = session.execute(statement).scalar()
        if claimed is not None:
            return int(claimed)
        if session.scalar(candidate) is None:
            return None
    return None


def extend_claim(session: Session, inspection_id: int, claimant: str, expires_at: datetime) -> None:
    session.execute(update(Inspection).where(Inspection.id == inspection_id, Inspection.claimed_by == claimant)
                    .values(claim_expires_at=expires_at).execution_options(synchronize_session=False))


def release_claim(session: Session, inspection_id: int, claimant: str) -> bool:
    """Give up ``claimant``'s claim on an inspection; whether it held one."""
    result = session.execute(
        update(Inspection).where(Inspection.id == inspection_id, Inspection.claimed_by == claimant)
        .values(claimed_by=None, claim_expires_at=None).execution_options(synchronize_session=False))
    return result.rowcount == 1


def unreviewed_with_image(session: Session, tool_id: int, threshold: float, limit: int) -> list[Inspection]:
    """Kept-image inspections nobody reviewed nor queued, closest to the threshold first."""
    query = (select(Inspection)
             .where(Inspection.tool_id == tool_id, Inspection.image_key.is_not(None),
                    Inspection.needs_review.is_(False), ~exists().where(Review.inspection_id == Inspection.id))
             .order_by(func.abs(Inspection.score - threshold), Inspection.created_at.desc())
             .limit(limit))
    return list(session.scalars(query))


def reviews_with_image(session: Session, tool_id: int, limit: int) -> list[tuple[Review, Inspection]]:
    """The newest reviewed inspections of a tool whose image was kept."""
    query = (select(Review, Inspection).join(Inspection, Review.inspection_id == Inspection.id)
             .where(Inspection.tool_id == tool_id, Inspection.image_key.is_not(None))
             .order_by(Review.id.desc()).limit(limit))
    return [(review, inspection) for review, inspection in session.execute(query).all()]


def last_review(session: Session, reviewer: str, device: str | None = None) -> Review | None:
    query = select(Review).where(Review.reviewer == reviewer)
    if device is not None:
        query = query.where(Review.device == device)
    return session.scalar(query.order_by(Review.id.desc()).limit(1))


def review_outcomes(session: Session, tool_id: int, version_id: int) -> dict[tuple[str, int, str | None], int]:
    """Inspections a model version decided, counted by (decision, queue reason rank, operator verdict or
    None when unreviewed): the material of realised escape and false-reject estimates."""
    query = (select(Inspection.decision, Inspection.review_priority, Review.verdict, func.count())
             .outerjoin(Review, Review.inspection_id == Inspection.id)
             .where(Inspection.tool_id == tool_id, Inspection.model_version_id == version_id)
             .group_by(Inspection.decision, Inspection.review_priority, Review.verdict))
    return {(decision, int(rank), verdict): int(n) for decision, rank, verdict, n in session.execute(query).all()}
