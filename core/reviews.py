"""The review queue: inspections a person must confirm, claimed one at a time, and their verdicts.

What needs a person: models that disagree, a score inside the uncertainty band, a decision taken in
degraded mode, and a random share of passes drawn for audit (``audit_share``). The queue is ordered by
that priority, then by age. A reviewer *claims* the next item in the database for ``CLAIM_SECONDS``,
so two tablets never get the same inspection; a verdict on an inspection whose image was kept becomes
a labelled sample (source ``review``), a share of them (``holdout_share``) held out of training to
compare model versions fairly. Every verdict, skip and undo is in the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from core.audit import Actor, log
from core.auth.guard import require
from core.auth.roles import Permission
from core.auth.signatures import Meaning, sign_if_required
from core.errors import InvalidInputError, NotFoundError, StudioError
from core.inspect.models import load_tool_models
from core.samples import fields_of_stored_image
from core.studio import Studio
from core.tool_settings import ToolSettings
from core.tools import require_tool
from storage import accounts as accounts_repo
from storage import repository as repo
from storage import review_queue as queue_repo
from storage.review_queue import QueueScope
from storage.tables import QUEUE_PRIORITIES, Inspection, Review, Sample, utc_now

CLAIM_SECONDS = 120.0
REASONS = {rank: reason for reason, rank in QUEUE_PRIORITIES.items()}


@dataclass(frozen=True)
class Reviewer(Actor):
    """A person reviewing on one device; ``session`` identifies the claims of this browser tab or CLI run."""

    session: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class QueueItem:
    inspection_id: int
    created_at: datetime
    decision: str
    label: str
    score: float
    scores: dict[str, float]
    image_key: str | None


@dataclass(frozen=True)
class Card:
    """Everything the review card shows of one claimed inspection."""

    inspection_id: int
    tool: str
    classes: list[str]
    good_class: str
    created_at: datetime
    station: str
    decision: str
    label: str
    score: float
    scores: dict[str, float]
    anomaly_score: float | None
    opinions: dict[str, Any]
    degraded: bool
    reason: str
    image_key: str | None
    model_version_id: int | None
    claim_expires_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"inspection_id": self.inspection_id, "tool": self.tool, "classes": self.classes,
                "created_at": self.created_at.isoformat(sep=" ", timespec="seconds"), "station": self.station,
                "decision": self.decision, "label": self.label, "score": self.score, "scores": self.scores,
                "anomaly_score": self.anomaly_score, "opinions": self.opinions, "degraded": self.degraded,
                "reason": self.reason, "image_key": self.image_key, "model_version": self.model_version_id}


def _scope(session: Any, tool_name: str | None, start: datetime | None, end: datetime | None) -> QueueScope:
    tool_id = require_tool(session, tool_name).id if tool_name else None
    return QueueScope(tool_id, start, end)


def review_queue(studio: Studio, tool_name: str, limit: int = 20) -> tuple[list[QueueItem], int]:
    """The first ``limit`` inspections awaiting review (priority, then oldest) and how many await in all."""
    with studio.transaction() as session:
        scope = _scope(session, tool_name, None, None)
        items = [QueueItem(i.id, i.created_at, i.decision, i.label, i.score, dict(i.scores), i.image_key)
                 for i in queue_repo.queued(session, scope, limit)]
        return items, sum(queue_repo.count_queued(session, scope).values())


def queue_counts(studio: Studio, tool_name: str | None = None, start: datetime | None = None,
                 end: datetime | None = None) -> dict[str, int]:
    """How many inspections await review, per reason."""
    with studio.transaction() as session:
        return queue_repo.count_queued(session, _scope(session, tool_name, start, end))


def _card(session: Any, inspection: Inspection) -> Card:
    tool = repo.get_tool_by_id(session, inspection.tool_id)
    return Card(inspection.id, tool.name, list(tool.class_names), tool.good_class, inspection.created_at,
                inspection.station, inspection.decision, inspection.label, inspection.score,
                dict(inspection.scores), inspection.anomaly_score, dict(inspection.opinions or {}),
                bool(inspection.degraded), REASONS.get(inspection.review_priority, "audit"), inspection.image_key,
                inspection.model_version_id, inspection.claim_expires_at)


def next_card(studio: Studio, reviewer: Reviewer, tool_name: str | None = None, start: datetime | None = None,
              end: datetime | None = None, exclude: Collection[int] = ()) -> Card | None:
    """The card ``reviewer`` should see now: the item it already holds, else the next free one, claimed.

    ``exclude`` lists inspections this reviewer skipped. None when nothing (in scope) is free.
    """
    require(studio, reviewer, Permission.REVIEW, "review queue")
    now = utc_now()
    expires = now + timedelta(seconds=CLAIM_SECONDS)
    with studio.transaction() as session:
        scope = _scope(session, tool_name, start, end)
        inspection = queue_repo.held_claim(session, reviewer.session, scope, now, exclude)
        if inspection is not None:
            queue_repo.extend_claim(session, inspection.id, reviewer.session, expires)
        else:
            claimed = queue_repo.claim_next(session, reviewer.session, scope, now, expires, exclude)
            if claimed is None:
                return None
            inspection = repo.get_inspection(session, claimed)
            session.refresh(inspection)
        return _card(session, inspection)


def skip(studio: Studio, inspection_id: int, reviewer: Reviewer) -> None:
    """Not sure: give the item back to the queue (someone else may take it) and log it."""
    require(studio, reviewer, Permission.REVIEW, f"inspection {inspection_id}")
    with studio.transaction() as session:
        inspection = repo.get_inspection(session, inspection_id)
        if inspection is None:
            raise NotFoundError(f"no inspection {inspection_id}")
        queue_repo.release_claim(session, inspection_id, reviewer.session)
        log(session, reviewer, "skip", f"inspection {inspection_id}", inspection.tool_id)


def as_reviewer(who: str | Actor) -> Reviewer:
    """A reviewer from an actor (its own claims session) or from a bare name (not signed in: no role)."""
    if isinstance(who, Reviewer):
        return who
    if isinstance(who, Actor):
        return Reviewer(who.name, who.device, who.role, who.via, who.user_id)
    return Reviewer(name=who)


def _held_out(sha256: str, share: float) -> bool:
    """A stable draw per image: the same image is always held out, or always not."""
    return int(sha256[:8], 16) % 1000 < round(share * 1000)


def submit_review(studio: Studio, inspection_id: int, verdict: str, reviewer: str | Actor = "operator",
                  signature_password: str | None = None) -> int:
    """Store a person's verdict (a class of the tool); returns the review id.

    Refused when the inspection was reviewed already or another reviewer holds an unexpired claim on it.
    On a tool with signed review (setting ``review.signed``), the verdict on a failed part needs the
    signed-in reviewer's e-signature (``signature_password``); a signed verdict cannot be undone.
    """
    person = as_reviewer(reviewer)
    require(studio, person, Permission.REVIEW, f"inspection {inspection_id}")
    _sign_verdict(studio, person, inspection_id, verdict, signature_password)
    try:
        with studio.transaction() as session:
            return _store_verdict(studio, session, inspection_id, verdict, person)
    except IntegrityError:  # a concurrent verdict on the same inspection won the unique constraint
        raise InvalidInputError(f"inspection {inspection_id} was already reviewed") from None


def _sign_verdict(studio: Studio, person: Reviewer, inspection_id: int, verdict: str, password: str | None) -> None:
    with studio.transaction() as session:
        inspection = repo.get_inspection(session, inspection_id)
        if inspection is None or inspection.decision != "fail":
            return
        tool = repo.get_tool_by_id(session, inspection.tool_id)
        if not ToolSettings.from_json(tool.settings).signed_review:
            return
        content = {"tool": tool.name, "inspection": inspection_id, "verdict": verdict,
                   "model_decision": inspection.decision, "model_label": inspection.label,
                   "image_key": inspection.image_key}
    sign_if_required(studio, person, password, Meaning.REVIEWED, "inspection", inspection_id, content)


def correct_verdict(studio: Studio, inspection_id: int, verdict: str, reviewer: Actor, reason: str,
                    signature_password: str | None = None) -> int:
    """Correct a signed verdict (it cannot be undone): a new signed record, meaning "reviewed", that names
    the signature it corrects and the reason; the first signature and its audit row stay as they were.
    The review and its sample take the corrected class. Returns the new signature's id (0 when this
    session does not sign: single-user mode)."""
    person = as_reviewer(reviewer)
    require(studio, person, Permission.REVIEW, f"inspection {inspection_id}")
    if not reason.strip():
        raise InvalidInputError("A correction of a signed verdict needs a reason.")
    with studio.transaction() as session:
        inspection = repo.get_inspection(session, inspection_id)
        if inspection is None or inspection.review is None:
            raise NotFoundError(f"no reviewed inspection {inspection_id}")
        signed = accounts_repo.signatures_for(session, "inspection", str(inspection_id))
        if not signed:
            raise InvalidInputError(f"the verdict on inspection {inspection_id} is not signed: undo it instead")
        tool = repo.get_tool_by_id(session, inspection.tool_id)
        if verdict not in tool.class_names:
            raise InvalidInputError(f"{verdict!r} is not a class of tool {tool.name!r}")
        content = {"tool": tool.name, "inspection": inspection_id, "verdict": verdict,
                   "previous_verdict": inspection.review.verdict, "corrects": signed[-1].id, "reason": reason.strip()}
    signature = sign_if_required(studio, person, signature_password, Meaning.REVIEWED, "inspection", inspection_id,
                                 content, corrects=signed[-1].id)
    with studio.transaction() as session:
        review = repo.get_inspection(session, inspection_id).review
        previous, review.verdict = review.verdict, verdict
        if review.sample_id is not None and (sample := session.get(Sample, review.sample_id)) is not None:
            sample.label = verdict
        log(session, person, "verdict_correction", f"inspection {inspection_id}", tool.id, verdict=verdict,
            previous_verdict=previous, reason=reason.strip(), corrects_signature=signed[-1].id,
            signature_id=None if signature is None else signature.id)
    return 0 if signature is None else signature.id


def _store_verdict(studio: Studio, session: Any, inspection_id: int, verdict: str, person: Reviewer) -> int:
    inspection = repo.get_inspection(session, inspection_id)
    if inspection is None:
        raise NotFoundError(f"no inspection {inspection_id}")
    if inspection.review is not None:
        raise InvalidInputError(f"inspection {inspection_id} was already reviewed")
    if (inspection.claimed_by not in (None, person.session) and inspection.claim_expires_at is not None
            and inspection.claim_expires_at >= utc_now()):
        raise InvalidInputError(f"inspection {inspection_id} is being reviewed on another device")
    tool = repo.get_tool_by_id(session, inspection.tool_id)
    if verdict not in tool.class_names:
        raise InvalidInputError(f"{verdict!r} is not a class of tool {tool.name!r}")
    review = repo.add_review(session, inspection_id, verdict, person.name)
    review.device = person.device[:100]
    sha = _sha_of(inspection.image_key) if inspection.image_key else None
    if sha and not repo.sample_exists(session, tool.id, sha):
        stored = fields_of_stored_image(studio, inspection.image_key)  # thumbnail and dHash, as imports make
        holdout = _held_out(sha, ToolSettings.from_json(tool.settings).holdout_share)
        sample = repo.add_sample(session, tool_id=tool.id, image_key=inspection.image_key, sha256=sha,
                                 label=verdict, source="review", width=stored.width, height=stored.height,
                                 thumb_key=stored.thumb_key, phash=stored.phash,
                                 original_name=f"inspection-{inspection.id}.png",
                                 split="held_out" if holdout else "train")
        review.sample_id = sample.id
    inspection.needs_review = False
    inspection.claimed_by = None
    inspection.claim_expires_at = None
    log(session, person, "verdict", f"inspection {inspection_id}", tool.id, verdict=verdict,
        model_decision=inspection.decision, model_label=inspection.label, review_id=review.id,
        sample_id=review.sample_id)
    session.flush()
    return review.id


def undo_review(studio: Studio, review_id: int, reviewer: Reviewer) -> int:
    """Take back a verdict: the review and the sample it made are removed and the inspection is queued
    again, claimed by ``reviewer`` so that it is the next card. Returns the inspection id."""
    require(studio, reviewer, Permission.REVIEW, f"review {review_id}")
    with studio.transaction() as session:
        review = session.get(Review, review_id)
        if review is None:
            raise NotFoundError(f"no review {review_id} (undone already?)")
        inspection = review.inspection
        if accounts_repo.signatures_for(session, "inspection", str(inspection.id)):
            raise InvalidInputError(f"the verdict on inspection {inspection.id} is signed and cannot be undone")
        verdict, sample_id = review.verdict, review.sample_id
        if sample_id is not None and (sample := session.get(Sample, sample_id)) is not None:
            session.delete(sample)
        repo.delete_review(session, review)
        inspection.needs_review = True
        inspection.claimed_by = reviewer.session
        inspection.claim_expires_at = utc_now() + timedelta(seconds=CLAIM_SECONDS)
        log(session, reviewer, "undo", f"inspection {inspection.id}", inspection.tool_id, verdict=verdict,
            review_id=review_id, sample_id=sample_id)
        return inspection.id


def last_review_id(studio: Studio, reviewer: str, device: str | None = None) -> int | None:
    """The newest review by ``reviewer`` (on ``device`` when given), for an undo from the CLI."""
    with studio.transaction() as session:
        review = queue_repo.last_review(session, reviewer, device)
        return None if review is None else review.id


@dataclass(frozen=True)
class Suggestion:
    inspection_id: int
    created_at: datetime
    decision: str
    score: float
    margin: float  # distance of the score to the threshold: small = the model is unsure

    def as_dict(self) -> dict[str, Any]:
        return {"inspection_id": self.inspection_id,
                "created_at": self.created_at.isoformat(sep=" ", timespec="seconds"),
                "decision": self.decision, "score": round(self.score, 4), "margin": round(self.margin, 4)}


def suggest_for_review(studio: Studio, tool_name: str, limit: int = 10) -> list[Suggestion]:
    """Uncertainty sampling: the unreviewed, not queued inspections with a kept image whose score lies
    closest to the threshold the deciding model decides with, i.e. those whose label would teach the
    model most (0.5 when the tool has no usable model)."""
    try:
        threshold = load_tool_models(studio, tool_name).models[0].threshold
    except StudioError:
        threshold = 0.5
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        return [Suggestion(i.id, i.created_at, i.decision, i.score, abs(i.score - threshold))
                for i in queue_repo.unreviewed_with_image(session, tool.id, threshold, limit)]


def queue_for_review(studio: Studio, inspection_ids: Collection[int], actor: Actor) -> int:
    """Send inspections (e.g. suggestions) to the review queue as uncertain; how many were added."""
    require(studio, actor, Permission.REVIEW, "review queue")
    added = 0
    with studio.transaction() as session:
        for inspection_id in inspection_ids:
            inspection = repo.get_inspection(session, inspection_id)
            if inspection is None or inspection.needs_review or inspection.review is not None:
                continue
            inspection.needs_review = True
            inspection.review_priority = QUEUE_PRIORITIES["uncertain"]
            log(session, actor, "queue", f"inspection {inspection_id}", inspection.tool_id, reason="suggested")
            added += 1
    return added


def _sha_of(image_key: str) -> str:
    return image_key.rsplit("/", 1)[-1].split(".", 1)[0]
