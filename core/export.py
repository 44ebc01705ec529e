"""Exporting a tool's dataset as a .zip (one folder per class + ``manifest.csv``) and reading it back.

Layout of the archive::

    manifest.csv                  file, label, split, source, sha256, width, height, mask, mask_sha256,
                                  original_name, created_at
    <label>/<sha256[:16]>.<ext>   the stored image, byte for byte
    masks/<label>/<sha256[:16]>.png   its defect mask, when it has one

Importing the archive again (``import_path``) restores labels, splits and masks; a file whose
bytes do not match the manifest's hash is rejected with that reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from core.errors import InvalidInputError, StudioError
from core.samples import MANIFEST_NAME, Candidate, read_member
from core.studio import Studio
from core.tools import require_tool
from storage import repository as repo
from storage.tables import SAMPLE_SPLITS

MAX_MANIFEST_BYTES = 32 * 1024 * 1024  # about 200,000 rows; a larger manifest.csv is refused unread
MANIFEST_FIELDS = ["file", "label", "split", "source", "sha256", "width", "height", "mask", "mask_sha256",
                   "original_name", "created_at"]


class ExportCancelledError(StudioError):
    """The export was cancelled; no archive was written."""


def export_dataset(
    studio: Studio,
    tool_name: str,
    target: Path,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> int:
    """Write the tool's live (not deleted) samples to the zip ``target``; returns how many.

    The archive is written to a temporary file beside ``target`` and renamed into place, so a
    cancelled or failed export leaves no partial archive.
    """
    target = Path(target)
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        samples = repo.page_of_samples(session, repo.sample_filter(tool.id), 0, None)
    samples.sort(key=lambda s: s.id)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".export-", suffix=".part")
    os.close(fd)
    try:
        rows = []
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for index, sample in enumerate(samples, start=1):
                if cancel is not None and cancel.is_set():
                    raise ExportCancelledError("export cancelled; no archive was written")
                ext = PurePosixPath(sample.image_key).suffix
                name = f"{sample.label}/{sample.sha256[:16]}{ext}"
                archive.writestr(name, _stored(studio, sample.id, sample.image_key))
                mask_name = mask_sha = ""
                if sample.mask_key:
                    mask_bytes = _stored(studio, sample.id, sample.mask_key)
                    mask_name = f"masks/{sample.label}/{sample.sha256[:16]}.png"
                    mask_sha = hashlib.sha256(mask_bytes).hexdigest()
                    archive.writestr(mask_name, mask_bytes)
                rows.append([name, sample.label, sample.split, sample.source, sample.sha256, sample.width,
                             sample.height, mask_name, mask_sha, sample.original_name or "",
                             sample.created_at.isoformat(timespec="seconds")])
                if progress:
                    progress(index, len(samples))
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(MANIFEST_FIELDS)
            writer.writerows(rows)
            archive.writestr(MANIFEST_NAME, text.getvalue())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(samples)


def _stored(studio: Studio, sample_id: int, key: str) -> bytes:
    try:
        return studio.images.read(key)
    except FileNotFoundError:
        raise StudioError(f"sample {sample_id} has lost its file {key}; no archive was written. Run "
                          "'python -m core store check' to list every such sample, then restore the data "
                          "folder from a backup or delete them") from None


def _checked_reader(archive: zipfile.ZipFile, name: str, sha256: str) -> Callable[[], bytes]:
    def read() -> bytes:
        data = read_member(archive, archive.getinfo(name))
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            raise OSError(f"{name} does not match the sha256 in {MANIFEST_NAME}")
        return data

    return read


def manifest_candidates(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> list[Candidate]:
    """Candidates described by an exported archive's manifest (label, split, mask from its rows)."""
    names = {m.filename for m in members}
    text = _read_manifest(archive)
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"file", "label"} <= set(reader.fieldnames):
        raise InvalidInputError(f"{MANIFEST_NAME} needs at least the columns 'file' and 'label'")
    try:
        return _rows_to_candidates(archive, reader, names)
    except csv.Error as error:
        raise InvalidInputError(
            f"{MANIFEST_NAME} is not a valid CSV file ({error}); export the dataset again") from None


def _rows_to_candidates(archive: zipfile.ZipFile, reader: csv.DictReader, names: set[str]) -> list[Candidate]:
    candidates = []
    for row in reader:
        name = row.get("file") or ""
        if not isinstance(name, str) or not name:
            continue
        split = row.get("split") or "train"
        if name not in names:
            candidates.append(Candidate(name, row.get("label"), _missing(name)))
            continue
        mask_name = row.get("mask") or ""
        mask = _checked_reader(archive, mask_name, row.get("mask_sha256") or "") if mask_name in names else None
        candidates.append(Candidate(name, row.get("label"), _checked_reader(archive, name, row.get("sha256") or ""),
                                    mask=mask, split=split if split in SAMPLE_SPLITS else "train",
                                    original_name=row.get("original_name") or None))
    return candidates


def _read_manifest(archive: zipfile.ZipFile) -> str:
    """The manifest's text, read with a size cap (the header's size may lie: at most one byte past the
    cap is read); an oversized, unreadable or non-UTF-8 manifest is refused with what to do."""
    limit_mb = MAX_MANIFEST_BYTES // 2**20
    info = archive.getinfo(MANIFEST_NAME)
    if info.file_size > MAX_MANIFEST_BYTES:
        raise InvalidInputError(f"{MANIFEST_NAME} is larger than {limit_mb} MB; refused (an exported "
                                "dataset's manifest is far smaller: export it again)")
    try:
        with archive.open(info) as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
        raise InvalidInputError(f"{MANIFEST_NAME} cannot be read ({error}); export the dataset again") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise InvalidInputError(f"{MANIFEST_NAME} is larger than {limit_mb} MB; refused")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{MANIFEST_NAME} is not UTF-8 text; export the dataset again") from None
    if "\0" in text:
        raise InvalidInputError(f"{MANIFEST_NAME} holds binary data (NUL bytes); export the dataset again")
    return text


def _missing(name: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise OSError(f"listed in {MANIFEST_NAME} but missing from the archive")

    return read
