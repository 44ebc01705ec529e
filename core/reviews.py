"""The review queue: inspections a person must confirm, and their verdicts.

A verdict on an inspection whose image was kept also becomes a labelled sample of the tool
(source ``review``): the operator's work feeds the next training.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.errors import InvalidInputError, NotFoundError
from core.images import decode_image
from core.studio import Studio
from core.tools import require_tool
from storage import repository as repo


@dataclass(frozen=True)
class QueueItem:
    inspection_id: int
    created_at: datetime
    decision: str
    label: str
    score: float
    scores: dict[str, float]
    image_key: str | None


def review_queue(studio: Studio, tool_name: str, limit: int = 20) -> tuple[list[QueueItem], int]:
    """The oldest ``limit`` inspections awaiting review and how many await in all."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        items = [QueueItem(i.id, i.created_at, i.decision, i.label, i.score, dict(i.scores), i.image_key)
                 for i in repo.review_queue(session, tool.id, limit)]
        return items, repo.count_review_queue(session, tool.id)


def submit_review(studio: Studio, inspection_id: int, verdict: str, reviewer: str = "operator") -> int:
    """Store a person's verdict (a class of the tool); returns the review id."""
    with studio.transaction() as session:
        inspection = repo.get_inspection(session, inspection_id)
        if inspection is None:
            raise NotFoundError(f"no inspection {inspection_id}")
        if inspection.review is not None:
            raise InvalidInputError(f"inspection {inspection_id} was already reviewed")
        tool = repo.get_tool_by_id(session, inspection.tool_id)
        if verdict not in tool.class_names:
            raise InvalidInputError(f"{verdict!r} is not a class of tool {tool.name!r}")
        review = repo.add_review(session, inspection_id, verdict, reviewer)
        if inspection.image_key and not repo.sample_exists(session, tool.id, _sha_of(inspection.image_key)):
            width, height = _size_of(studio, inspection.image_key)
            repo.add_sample(session, tool_id=tool.id, image_key=inspection.image_key,
                            sha256=_sha_of(inspection.image_key), label=verdict, source="review",
                            width=width, height=height)
        return review.id


def _sha_of(image_key: str) -> str:
    return image_key.rsplit("/", 1)[-1].split(".", 1)[0]


def _size_of(studio: Studio, image_key: str) -> tuple[int, int]:
    image = decode_image(studio.images.read(image_key))
    return image.width, image.height
