"""``python -m core store check [--repair]``: rows against files, and a safe garbage collection.

What is checked (read-only):

* **problems** (data the studio promised and does not have; never repaired by deleting anything):
  samples whose image or mask file is missing, inspections whose kept image is missing, model versions
  whose artifact folder is missing;
* **repairable**: samples whose thumbnail is missing (made again from the image);
* **garbage** (safe to remove): files in the image and thumbnail stores that no row references,
  temporary ``.tmp-*.part`` files of writers that died, artifact folders of no model version.

``--repair`` makes the missing thumbnails and removes garbage. A file is removed only when

1. no row references it, checked while the store lock (``storage.store_lock``) is held *exclusively*:
   every import holds it shared from its first file write to its last commit, so no import can be
   between "file written" and "row committed" while we look; and
2. it is older than the grace period (``grace_seconds``, default one hour), because some writers do
   not take the store lock (an inspection's image is written just before its row; a review verdict or
   a thumbnail made on first view writes outside an import). A file younger than that may belong to a
   row about to be committed and is left for a later run.

An artifact folder is removed when no model version names it, it is older than the grace period and
no training of that tool runs (its training lock is free); a training writes the folder before its row.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StudioError, TrainingBusyError
from core.images import ImageRejectedError, decode_image
from core.locks import training_lock
from core.studio import Studio, object_store
from core.thumbnails import thumbnail_jpeg, thumbnail_store
from storage import store_lock, store_refs
from storage.image_store import PARTIAL_PREFIX, ImageStore, process_alive
from storage.tables import Sample

DEFAULT_GRACE_SECONDS = 3600.0
LOCK_TIMEOUT_SECONDS = 30.0


@dataclass
class StoreReport:
    """What the check found (and, with repair, what it did)."""

    samples_without_image: list[int] = field(default_factory=list)
    samples_without_mask: list[int] = field(default_factory=list)
    inspections_without_image: list[int] = field(default_factory=list)
    versions_without_folder: list[int] = field(default_factory=list)
    samples_without_thumbnail: list[int] = field(default_factory=list)
    unreferenced_files: list[str] = field(default_factory=list)  # "images/ab/cd/..." relative to the data dir
    partial_files: list[str] = field(default_factory=list)
    orphan_artifact_folders: list[str] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)
    kept_young: int = 0  # garbage younger than the grace period, left for a later run
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        """Rows whose files are gone: data loss that no repair can undo."""
        return (len(self.samples_without_image) + len(self.samples_without_mask)
                + len(self.inspections_without_image) + len(self.versions_without_folder))

    @property
    def garbage(self) -> int:
        return len(self.unreferenced_files) + len(self.partial_files) + len(self.orphan_artifact_folders)

    @property
    def findings(self) -> int:
        """Everything found: problems, missing thumbnails and garbage (0 for a clean store)."""
        return self.problems + len(self.samples_without_thumbnail) + self.garbage

    def as_dict(self) -> dict[str, Any]:
        return {
            "problems": self.problems, "findings": self.findings,
            "samples_without_image": self.samples_without_image,
            "samples_without_mask": self.samples_without_mask,
            "inspections_without_image": self.inspections_without_image,
            "versions_without_folder": self.versions_without_folder,
            "samples_without_thumbnail": self.samples_without_thumbnail,
            "unreferenced_files": len(self.unreferenced_files),
            "partial_files": len(self.partial_files),
            "orphan_artifact_folders": self.orphan_artifact_folders,
            "repaired": self.repaired, "kept_younger_than_grace": self.kept_young, "notes": self.notes,
        }

    def advice(self) -> list[str]:
        """What the user should do about each kind of finding."""
        lines = []
        if self.samples_without_image or self.samples_without_mask:
            ids = sorted(set(self.samples_without_image + self.samples_without_mask))
            lines.append(f"{len(ids)} sample(s) lost their image or mask file (ids {_short(ids)}): restore the "
                         "data folder from a backup, or delete them: python -m core samples delete IDS --tool T")
        if self.inspections_without_image:
            lines.append(f"{len(self.inspections_without_image)} inspection(s) lost their kept image: restore it "
                         "from a backup (the inspections themselves are intact)")
        if self.versions_without_folder:
            lines.append(f"model version(s) {_short(self.versions_without_folder)} lost their artifact folder: "
                         "delete them (python -m core models delete V --tool T) and train again")
        if self.samples_without_thumbnail:
            lines.append(f"{len(self.samples_without_thumbnail)} thumbnail(s) missing: run with --repair to make them")
        if self.garbage:
            lines.append(f"{self.garbage} unreferenced file(s) or folder(s): run with --repair to remove them "
                         "(files younger than the grace period are kept)")
        return lines


def _short(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else "")


def _store_files(store: ImageStore) -> tuple[list[str], list[Path]]:
    """(final keys in the store's objects, temporary files under its local root)."""
    keys = list(store.objects.keys())
    partial = sorted(store.root.rglob(f"{PARTIAL_PREFIX}*")) if store.root.exists() else []
    return keys, [p for p in partial if p.is_file()]


def _object_age(store: ImageStore, key: str, now: float) -> float:
    modified = store.objects.modified_at(key)
    return 0.0 if modified is None else now - modified.timestamp()


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0


def _partial_is_dead(path: Path) -> bool:
    pid = path.name[len(PARTIAL_PREFIX):].split("-", 1)[0]
    return not pid.isdigit() or not process_alive(int(pid))


def _training_running(studio: Studio, tool_folder: str) -> bool:
    if not (studio.settings.locks_dir / f"train-{tool_folder}.lock").exists():
        return False
    try:
        with training_lock(studio, tool_folder):
            return False
    except TrainingBusyError:
        return True


def check_store(studio: Studio, repair: bool = False, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> StoreReport:
    """Compare rows with files (see the module docstring); with ``repair``, fix what is safe to fix."""
    if repair:
        with store_lock.exclusive(studio.settings.locks_dir, lock_timeout) as alone:
            if not alone:
                report = _check(studio, False, grace_seconds)
                report.notes.append("imports were running for the whole wait: nothing was removed; run "
                                    "--repair again when they are done")
                return report
            return _check(studio, True, grace_seconds)
    return _check(studio, False, grace_seconds)


def _check(studio: Studio, repair: bool, grace: float) -> StoreReport:
    report = StoreReport()
    images, thumbs = studio.images, thumbnail_store(studio)
    data_dir = studio.settings.data_dir
    # files first, rows second: a file written and committed in between is then referenced, never garbage
    image_keys, image_partial = _store_files(images)
    thumb_keys, thumb_partial = _store_files(thumbs)
    models_dir = studio.settings.models_dir
    folders = sorted(p.relative_to(models_dir).as_posix() for p in models_dir.glob("*/*") if p.is_dir()) \
        if models_dir.exists() else []
    with studio.transaction() as session:
        samples = store_refs.samples_with_files(session)
        inspections = store_refs.inspections_with_images(session)
        versions = store_refs.versions_with_folders(session)
        used_images = store_refs.referenced_images(session)
        used_thumbs = store_refs.referenced_thumbnails(session)
    image_set, thumb_set = set(image_keys), set(thumb_keys)
    for sample_id, _tool, _deleted, image_key, thumb_key, mask_key in samples:
        if image_key not in image_set and not images.exists(image_key):
            report.samples_without_image.append(sample_id)
        if mask_key and mask_key not in image_set and not images.exists(mask_key):
            report.samples_without_mask.append(sample_id)
        if (not thumb_key) or (thumb_key not in thumb_set and not thumbs.exists(thumb_key)):
            report.samples_without_thumbnail.append(sample_id)
    report.inspections_without_image = [i for i, key, map_key in inspections
                                        if any(k not in image_set and not images.exists(k)
                                               for k in (key, map_key) if k)]
    folder_set = set(folders)
    artifacts = None if images.is_local else object_store(studio.settings, "artifacts")

    def in_store(manifest: dict | None) -> bool:  # with an object store the local folder is only a cache
        return bool(manifest) and artifacts is not None and all(artifacts.exists(f["key"])
                                                                for f in manifest["files"].values())

    report.versions_without_folder = [v for v, _tool, folder, manifest in versions if not in_store(manifest)
                                      and folder not in folder_set and not (models_dir / folder).is_dir()]
    used_folders = {folder for _v, _t, folder, _m in versions}

    now = time.time()
    garbage: list[tuple[str, Path | tuple[ImageStore, str]]] = []  # (kind, path or (store, key))
    for store, keys, used, prefix in ((images, image_keys, used_images, "images"),
                                      (thumbs, thumb_keys, used_thumbs, "thumbnails")):
        for key in keys:
            if key not in used:
                report.unreferenced_files.append(f"{prefix}/{key}")
                garbage.append(("file", (store, key)))
    for path in image_partial + thumb_partial:
        if _partial_is_dead(path) or _age(path, now) > grace:
            report.partial_files.append(path.relative_to(data_dir).as_posix())
            garbage.append(("partial", path))
    for folder in folders:
        if folder not in used_folders:
            report.orphan_artifact_folders.append(folder)
            garbage.append(("folder", models_dir / folder))
    if repair:
        _repair(studio, report, garbage, grace, now)
    return report


def _repair(studio: Studio, report: StoreReport, garbage: list[tuple[str, Path | tuple[ImageStore, str]]],
            grace: float, now: float) -> None:
    removed = {"files": 0, "partial_files": 0, "artifact_folders": 0}
    for kind, where in garbage:
        if isinstance(where, tuple):  # an object: (store, key)
            store, key = where
            if _object_age(store, key, now) < grace:
                report.kept_young += 1
            elif store.exists(key):
                store.delete(key)
                removed["files"] += 1
            continue
        path = where
        if kind != "partial" and _age(path, now) < grace:
            report.kept_young += 1
            continue
        if kind == "folder":
            if _training_running(studio, path.parent.name):
                report.kept_young += 1
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed["artifact_folders"] += 1
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed["files" if kind == "file" else "partial_files"] += 1
    made = 0
    for sample_id in report.samples_without_thumbnail:
        if sample_id in report.samples_without_image:
            continue
        if _make_thumbnail(studio, sample_id):
            made += 1
    report.repaired = {**removed, "thumbnails": made}


def _make_thumbnail(studio: Studio, sample_id: int) -> bool:
    with studio.transaction() as session:
        sample = session.get(Sample, sample_id)
        if sample is None:
            return False
        try:
            rgb = decode_image(studio.images.read(sample.image_key)).rgb
        except (ImageRejectedError, OSError):
            return False
        sample.thumb_key, _ = thumbnail_store(studio).put(thumbnail_jpeg(rgb), "jpg")
    return True


def require_clean(report: StoreReport) -> None:
    """Raise a StudioError naming the problems (for callers that must stop on data loss)."""
    if report.problems:
        raise StudioError("; ".join(report.advice()))
