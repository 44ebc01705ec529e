"""Which stored files and artifact folders the rows reference (for the store check and for cleaners).

Images store (``<data>/images``): ``sample.image_key``, ``sample.mask_key``, ``inspection.image_key``,
``inspection.map_key``.
Thumbnail store (``<data>/thumbnails``): ``sample.thumb_key``. Model artifacts (``<data>/models``):
``model_version.artifact_dir``. Deleted (soft-deleted) samples still reference their files: they can
be restored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.tables import Inspection, ModelVersion, Sample

IMAGE_COLUMNS = (Sample.image_key, Sample.mask_key, Inspection.image_key, Inspection.map_key)
THUMB_COLUMNS = (Sample.thumb_key,)


def referenced_images(session: Session) -> set[str]:
    keys: set[str] = set()
    for column in IMAGE_COLUMNS:
        keys.update(k for k in session.scalars(select(column).where(column.is_not(None))) if k)
    return keys


def referenced_thumbnails(session: Session) -> set[str]:
    return {k for k in session.scalars(select(Sample.thumb_key).where(Sample.thumb_key.is_not(None))) if k}


def referenced_among(session: Session, keys: Iterable[str], thumbnails: bool = False) -> set[str]:
    """The keys of ``keys`` that some row references (in the images store, or the thumbnail store)."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    columns = THUMB_COLUMNS if thumbnails else IMAGE_COLUMNS
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        for column in columns:
            found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


def artifact_dirs(session: Session) -> set[str]:
    return set(session.scalars(select(ModelVersion.artifact_dir)))


def samples_with_files(session: Session) -> list[tuple[int, int, bool, str, str | None, str | None]]:
    """``(id, tool_id, deleted, image_key, thumb_key, mask_key)`` of every sample."""
    return [tuple(row) for row in session.execute(  # type: ignore[misc]
        select(Sample.id, Sample.tool_id, Sample.deleted, Sample.image_key, Sample.thumb_key, Sample.mask_key)
        .order_by(Sample.id))]


def inspections_with_images(session: Session) -> list[tuple[int, str, str | None]]:
    """``(id, image_key, map_key)`` of every inspection that kept its image."""
    return [(i, k, m) for i, k, m in session.execute(
        select(Inspection.id, Inspection.image_key, Inspection.map_key).where(Inspection.image_key.is_not(None))
        .order_by(Inspection.id))]


def versions_with_folders(session: Session) -> list[tuple[int, int, str, dict[str, Any] | None]]:
    """``(id, tool_id, artifact_dir, artifact_manifest)`` of every model version."""
    return [tuple(row) for row in session.execute(  # type: ignore[misc]
        select(ModelVersion.id, ModelVersion.tool_id, ModelVersion.artifact_dir, ModelVersion.artifact_manifest)
        .order_by(ModelVersion.id))]
