"""core.dataset on SQLite and PostgreSQL: pages, filters, bulk actions with undo, stats, thumbnails,
near-duplicates."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from core.audit import SYSTEM
from core.dataset import DatasetFilter, browse, delete, near_duplicates, relabel, restore, set_split, stats
from core.errors import InvalidInputError
from core.images import decode_image, encode_png
from core.samples import Candidate, add_images, class_counts
from core.studio import Studio
from core.thumbnails import THUMB_SIDE, thumbnail_store
from core.tools import create_tool
from storage.tables import Sample, utc_now

TOOL = "parts"


def distinct_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_png(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))


@pytest.fixture
def parts(any_studio: Studio) -> Studio:
    """130 samples: 100 good (uploads), 30 scratch (captures)."""
    create_tool(any_studio, TOOL, "good,scratch,dent", actor=SYSTEM)
    add_images(any_studio, TOOL, [Candidate(f"g{i}.png", "good", lambda i=i: distinct_png(i)) for i in range(100)],
        actor=SYSTEM)
    add_images(any_studio, TOOL, [Candidate(f"s{i}.png", "scratch", lambda i=i: distinct_png(1000 + i))
                                  for i in range(30)], source="capture", actor=SYSTEM)
    return any_studio


def test_pages_are_newest_first_and_complete(parts: Studio) -> None:
    first, second, third = (browse(parts, TOOL, page=n) for n in (1, 2, 3))
    assert (first.total, first.pages) == (130, 3)
    assert [len(p.items) for p in (first, second, third)] == [60, 60, 10]
    ids = [item.id for p in (first, second, third) for item in p.items]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 130
    assert browse(parts, TOOL, page=99).page == 3  # clamped to the last page
    assert all(Path(item.thumbnail).is_file() for item in first.items)


def test_filters_by_label_source_split_and_day(parts: Studio) -> None:
    assert browse(parts, TOOL, DatasetFilter(labels=["scratch"])).total == 30
    assert browse(parts, TOOL, DatasetFilter(sources=["upload"])).total == 100
    assert browse(parts, TOOL, DatasetFilter(labels=["scratch"], sources=["upload"])).total == 0
    some = [item.id for item in browse(parts, TOOL, DatasetFilter(labels=["good"])).items[:7]]
    set_split(parts, TOOL, some, "held_out", actor=SYSTEM)
    held = browse(parts, TOOL, DatasetFilter(splits=["held_out"]))
    assert sorted(item.id for item in held.items) == sorted(some)
    assert browse(parts, TOOL, DatasetFilter(splits=["train"])).total == 123

    with parts.transaction() as session:  # ten samples were captured two days ago
        session.execute(update(Sample).where(Sample.id.in_(some[:3] + [1, 2, 3, 4, 5, 6, 7]))
                        .values(created_at=utc_now() - timedelta(days=2)))
    today = utc_now().date()
    assert browse(parts, TOOL, DatasetFilter(first_day=today, last_day=today)).total == 120
    two_days_ago = today - timedelta(days=2)
    assert browse(parts, TOOL, DatasetFilter(first_day=two_days_ago, last_day=two_days_ago)).total == 10
    assert browse(parts, TOOL, DatasetFilter(splits=["held_out"], last_day=two_days_ago)).total == 3
    with pytest.raises(InvalidInputError, match="unknown filter value"):
        browse(parts, TOOL, DatasetFilter(sources=["camera-roll"]))


def test_delete_is_soft_and_undone(parts: Studio) -> None:
    ids = [item.id for item in browse(parts, TOOL, DatasetFilter(labels=["scratch"])).items[:5]]
    assert delete(parts, TOOL, ids, actor=SYSTEM) == sorted(ids)
    assert delete(parts, TOOL, ids, actor=SYSTEM) == []  # deleting again deletes nothing new
    assert class_counts(parts, TOOL) == {"good": 100, "scratch": 25, "dent": 0}
    gone = browse(parts, TOOL, DatasetFilter(deleted=True))
    assert sorted(item.id for item in gone.items) == sorted(ids)
    with parts.transaction() as session:
        assert all(s.deleted_at is not None for s in session.scalars(select(Sample).where(Sample.id.in_(ids))))
    assert restore(parts, TOOL, ids, actor=SYSTEM) == 5
    assert class_counts(parts, TOOL) == {"good": 100, "scratch": 30, "dent": 0}
    with parts.transaction() as session:
        assert all(s.deleted_at is None and not s.deleted
                   for s in session.scalars(select(Sample).where(Sample.id.in_(ids))))


def test_relabel_and_split_check_their_input(parts: Studio) -> None:
    ids = [item.id for item in browse(parts, TOOL, DatasetFilter(labels=["good"])).items[:4]]
    assert relabel(parts, TOOL, ids, " Dent ", actor=SYSTEM) == 4
    assert class_counts(parts, TOOL) == {"good": 96, "scratch": 30, "dent": 4}
    with pytest.raises(InvalidInputError, match="'crack' is not a class"):
        relabel(parts, TOOL, ids, "crack", actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="no sample"):
        relabel(parts, TOOL, [ids[0], 99_999], "good", actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="split must be"):
        set_split(parts, TOOL, ids, "test", actor=SYSTEM)
    assert class_counts(parts, TOOL) == {"good": 96, "scratch": 30, "dent": 4}  # refused changes changed nothing


def test_samples_of_another_tool_are_out_of_reach(parts: Studio) -> None:
    create_tool(parts, "other", "good,bad", actor=SYSTEM)
    other = add_images(parts, "other", [Candidate("o.png", "good", lambda: distinct_png(5000))], actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="no sample"):
        relabel(parts, TOOL, other.sample_ids, "scratch", actor=SYSTEM)
    assert delete(parts, TOOL, other.sample_ids, actor=SYSTEM) == []
    assert class_counts(parts, "other") == {"good": 1, "bad": 0}


def test_stats_per_class(parts: Studio) -> None:
    ids = [item.id for item in browse(parts, TOOL, DatasetFilter(labels=["scratch"])).items]
    set_split(parts, TOOL, ids[:10], "held_out", actor=SYSTEM)
    delete(parts, TOOL, ids[10:12], actor=SYSTEM)
    rows = {s.label: (s.train, s.held_out, s.deleted, s.total) for s in stats(parts, TOOL)}
    assert rows == {"good": (100, 0, 0, 100), "scratch": (18, 10, 2, 28), "dent": (0, 0, 0, 0)}


def test_missing_thumbnails_are_made_once(studio: Studio, elpv_subset) -> None:  # noqa: ANN001
    create_tool(studio, TOOL, "good,scratch", actor=SYSTEM)
    cell = sorted((elpv_subset / "good").glob("*.png"))[0]
    report = add_images(studio, TOOL, [Candidate("cell.png", "good", cell.read_bytes)], actor=SYSTEM)
    store = thumbnail_store(studio)
    with studio.transaction() as session:  # a sample from before thumbnails existed
        sample = session.get(Sample, report.sample_ids[0])
        store.delete(sample.thumb_key)
        sample.thumb_key = None
    [item] = browse(studio, TOOL).items
    thumb = decode_image(Path(item.thumbnail).read_bytes()).rgb
    assert thumb.shape == (THUMB_SIDE, THUMB_SIDE, 3)
    with studio.transaction() as session:
        key = session.get(Sample, report.sample_ids[0]).thumb_key
    assert key is not None and store.path(key) == Path(item.thumbnail)
    modified = Path(item.thumbnail).stat().st_mtime_ns
    assert Path(browse(studio, TOOL).items[0].thumbnail).stat().st_mtime_ns == modified  # not made again


def test_near_duplicates_of_live_samples(studio: Studio, elpv_subset) -> None:  # noqa: ANN001
    create_tool(studio, TOOL, "good,scratch", actor=SYSTEM)
    cells = sorted((elpv_subset / "good").glob("*.png"))[:6]
    rgb = decode_image(cells[0].read_bytes()).rgb
    brighter = encode_png(np.clip(rgb.astype(np.int16) + 12, 0, 255).astype(np.uint8))
    report = add_images(studio, TOOL, [Candidate(p.name, "good", p.read_bytes) for p in cells]
                        + [Candidate("brighter.png", "good", lambda: brighter)], actor=SYSTEM)
    original, copy = report.sample_ids[0], report.sample_ids[-1]
    pairs = near_duplicates(studio, TOOL)
    assert (original, copy) in [(a, b) for a, b, _ in pairs]
    delete(studio, TOOL, [copy], actor=SYSTEM)
    assert (original, copy) not in [(a, b) for a, b, _ in near_duplicates(studio, TOOL)]


def test_held_out_samples_are_not_trained_on(studio: Studio, elpv_subset) -> None:  # noqa: ANN001
    from core.samples import import_path
    from core.training import _load_training_images
    from models.registry import get_method

    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    import_path(studio, TOOL, elpv_subset, actor=SYSTEM)
    held = [item.id for item in browse(studio, TOOL, DatasetFilter(labels=["good"])).items[:5]]
    set_split(studio, TOOL, held, "held_out", actor=SYSTEM)
    data = _load_training_images(studio, TOOL, get_method("classifier"))
    assert (len(data.images), data.labels.count("good"), data.labels.count("defective"),
            data.skipped) == (35, 15, 20, [])
    assert not set(held) & set(data.sample_ids)
