"""Browsing and curating a tool's dataset: pages of thumbnails, filters, bulk actions, statistics.

Every action works on sample ids of one tool. Deleting is soft (``deleted`` + ``deleted_at``) and
undone by :func:`restore`; held-out samples stay in the dataset for evaluation and are marked with
:func:`set_split`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy.orm import Session

from core.audit import Actor, log
from core.auth.guard import require
from core.auth.roles import Permission
from core.errors import InvalidInputError
from core.images import ImageRejectedError, decode_image
from core.studio import Studio
from core.thumbnails import near_duplicate_pairs, thumbnail_jpeg, thumbnail_store
from core.tools import require_tool
from storage import repository as repo
from storage.image_store import ImageStore
from storage.tables import SAMPLE_SOURCES, SAMPLE_SPLITS, Sample, utc_now

PAGE_SIZE = 60
SOURCES = SAMPLE_SOURCES


@dataclass(frozen=True)
class DatasetFilter:
    """What the browser shows: empty lists mean every label / source / split; dates are inclusive."""

    labels: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    first_day: date | None = None
    last_day: date | None = None
    deleted: bool = False

    def clauses(self, tool_id: int) -> list[object]:
        unknown = (set(self.sources) - set(SAMPLE_SOURCES)) | (set(self.splits) - set(SAMPLE_SPLITS))
        if unknown:
            raise InvalidInputError(f"unknown filter value(s): {', '.join(sorted(unknown))}")
        start = datetime.combine(self.first_day, time.min) if self.first_day else None
        end = datetime.combine(self.last_day + timedelta(days=1), time.min) if self.last_day else None
        return repo.sample_filter(tool_id, self.labels, self.sources, self.splits, start, end, self.deleted)


@dataclass(frozen=True)
class BrowseItem:
    """One cell of the thumbnail grid."""

    id: int
    label: str
    source: str
    split: str
    created_at: datetime
    width: int
    height: int
    thumbnail: str | bytes | None  # ImageStore.viewable; None when the stored image cannot be read any more
    has_mask: bool
    name: str | None


@dataclass(frozen=True)
class BrowsePage:
    items: list[BrowseItem]
    total: int
    page: int
    pages: int


def browse(studio: Studio, tool_name: str, filters: DatasetFilter | None = None, page: int = 1,
           per_page: int = PAGE_SIZE) -> BrowsePage:
    """One page (1-based, newest first) of the tool's samples matching ``filters``, with thumbnail paths.

    Thumbnails missing for older samples are made here, once, and recorded on the sample.
    """
    filters = filters or DatasetFilter()
    thumbs = thumbnail_store(studio)
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        clauses = filters.clauses(tool.id)
        total = repo.count_samples(session, clauses)
        pages = max(1, -(-total // per_page))
        page = min(max(1, page), pages)
        samples = repo.page_of_samples(session, clauses, (page - 1) * per_page, per_page)
        items = [BrowseItem(s.id, s.label, s.source, s.split, s.created_at, s.width, s.height,
                            _thumbnail(studio, s, thumbs), s.mask_key is not None, s.original_name)
                 for s in samples]
    return BrowsePage(items, total, page, pages)


def _thumbnail(studio: Studio, sample: Sample, store: ImageStore) -> str | bytes | None:
    """The sample's thumbnail (a file path, or bytes from the object store), made (and recorded on the
    row) when it has none yet; None when it cannot be read."""
    if not sample.thumb_key:
        try:
            rgb = decode_image(studio.images.read(sample.image_key)).rgb
        except (ImageRejectedError, OSError):
            return None
        sample.thumb_key, _ = store.put(thumbnail_jpeg(rgb), "jpg")
    try:
        return store.viewable(sample.thumb_key)
    except OSError:
        return None


def _checked_ids(session: Session, tool_id: int, ids: list[int]) -> list[int]:
    found = [s.id for s in repo.samples_by_ids(session, tool_id, list(ids))]
    missing = sorted(set(ids) - set(found))
    if missing:
        raise InvalidInputError(f"no sample(s) {', '.join(map(str, missing))} in this tool")
    return found


def relabel(studio: Studio, tool_name: str, ids: list[int], label: str, actor: Actor) -> int:
    """Give the samples ``ids`` the class ``label`` (audited); returns how many changed."""
    require(studio, actor, Permission.EDIT_DATASET, f"tool {tool_name}")
    label = label.strip().lower()
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        if label not in tool.class_names:
            raise InvalidInputError(f"{label!r} is not a class of this tool ({', '.join(tool.class_names)})")
        checked = _checked_ids(session, tool.id, ids)
        log(session, actor, "relabel", _target(checked), tool.id, ids=checked, to=label)
        return repo.update_samples(session, tool.id, checked, label=label)


def delete(studio: Studio, tool_name: str, ids: list[int], actor: Actor) -> list[int]:
    """Soft-delete the samples ``ids`` (audited); returns the ids deleted now (what :func:`restore` undoes)."""
    require(studio, actor, Permission.DELETE_SAMPLES, f"tool {tool_name}")
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        live = [s.id for s in repo.samples_by_ids(session, tool.id, list(ids)) if not s.deleted]
        repo.update_samples(session, tool.id, live, deleted=True, deleted_at=utc_now())
        if live:
            log(session, actor, "delete_samples", _target(live), tool.id, ids=live)
        return live


def restore(studio: Studio, tool_name: str, ids: list[int], actor: Actor) -> int:
    """Undo a soft delete of the samples ``ids`` (audited); returns how many came back."""
    require(studio, actor, Permission.DELETE_SAMPLES, f"tool {tool_name}")
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        gone = [s.id for s in repo.samples_by_ids(session, tool.id, list(ids)) if s.deleted]
        if gone:
            log(session, actor, "restore_samples", _target(gone), tool.id, ids=gone)
        return repo.update_samples(session, tool.id, gone, deleted=False, deleted_at=None)


def set_split(studio: Studio, tool_name: str, ids: list[int], split: str, actor: Actor) -> int:
    """Mark the samples ``ids`` as ``held_out`` (kept for evaluation) or back in ``train`` (audited)."""
    require(studio, actor, Permission.EDIT_DATASET, f"tool {tool_name}")
    if split not in SAMPLE_SPLITS:
        raise InvalidInputError(f"split must be one of {', '.join(SAMPLE_SPLITS)}")
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        checked = _checked_ids(session, tool.id, ids)
        log(session, actor, "split", _target(checked), tool.id, ids=checked, to=split)
        return repo.update_samples(session, tool.id, checked, split=split)


def _target(ids: list[int]) -> str:
    return f"sample {ids[0]}" if len(ids) == 1 else f"{len(ids)} samples"


@dataclass(frozen=True)
class ClassStats:
    label: str
    train: int
    held_out: int
    deleted: int

    @property
    def total(self) -> int:
        return self.train + self.held_out


def stats(studio: Studio, tool_name: str) -> list[ClassStats]:
    """Per class (every class of the tool, then any other label found): live train / held-out counts
    and deleted samples."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        rows = repo.dataset_stats(session, tool.id)
        classes = list(tool.class_names)
    counts: dict[str, dict[str, int]] = {}
    for label, split, deleted, count in rows:
        bucket = counts.setdefault(label, {"train": 0, "held_out": 0, "deleted": 0})
        bucket["deleted" if deleted else split] += count
    labels = classes + sorted(set(counts) - set(classes))
    empty = {"train": 0, "held_out": 0, "deleted": 0}
    return [ClassStats(label, **counts.get(label, empty)) for label in labels]


def near_duplicates(studio: Studio, tool_name: str, max_bits: int | None = None) -> list[tuple[int, int, int]]:
    """Pairs of live samples ``(id_a, id_b, differing bits)`` whose perceptual hashes nearly match."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        rows = repo.live_phashes(session, tool.id)
    ids, hashes = [r[0] for r in rows], [r[1] for r in rows]
    return near_duplicate_pairs(ids, hashes) if max_bits is None else near_duplicate_pairs(ids, hashes, max_bits)
