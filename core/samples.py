"""Adding labelled images to a tool: uploads, folders and .zip files."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import InvalidInputError
from core.images import DecodedImage, ImageRejectedError, decode_image
from core.studio import Studio
from core.tools import require_tool
from storage import repository as repo

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MAX_ZIP_MEMBERS = 100_000
MAX_ZIP_EXPANDED_BYTES = 4 * 1024**3

ImportProgress = Callable[[int, int], None]


@dataclass
class ImportReport:
    """What an import did: counts and one reason per rejected file."""

    imported: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "skipped_duplicates": self.duplicates,
                "rejected": [{"file": name, "reason": reason} for name, reason in self.rejected]}


@dataclass(frozen=True)
class Candidate:
    """A file offered for import: display name, its label (None when unknown) and a byte reader."""

    name: str
    label: str | None
    read: Callable[[], bytes]


def add_images(
    studio: Studio,
    tool_name: str,
    candidates: Iterable[Candidate],
    source: str = "upload",
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Validate, store and record each candidate as a sample of ``tool_name``.

    Every file is decoded before anything is written; each sample is written in its own
    transaction after its image is stored, so an interruption keeps what was imported, whole.
    """
    items = list(candidates)
    report = ImportReport()
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        tool_id, classes = tool.id, list(tool.class_names)
    for index, item in enumerate(items, start=1):
        reason = _import_one(studio, tool_id, classes, item, source, report)
        if reason:
            report.rejected.append((item.name, reason))
        if progress:
            progress(index, len(items))
    return report


def _import_one(studio: Studio, tool_id: int, classes: list[str], item: Candidate, source: str,
                report: ImportReport) -> str | None:
    """Import one file; returns the reason when it is rejected."""
    if item.label is None:
        return "no label: put the file in a folder named after its class, or give a label"
    label = item.label.strip().lower()
    if label not in classes:
        return f"label {label!r} is not a class of this tool ({', '.join(classes)})"
    try:
        data = item.read()
        image: DecodedImage = decode_image(data)
    except ImageRejectedError as error:
        return str(error)
    except OSError as error:
        return f"cannot read file ({error.strerror or error})"
    sha256 = studio.images.digest(data)
    with studio.transaction() as session:
        if repo.sample_exists(session, tool_id, sha256):
            report.duplicates += 1
            return None
        key, _ = studio.images.put(data, image.ext)
        repo.add_sample(session, tool_id=tool_id, image_key=key, sha256=sha256, label=label,
                        source=source, width=image.width, height=image.height)
    report.imported += 1
    return None


def _folder_candidates(folder: Path, label: str | None) -> Iterator[Candidate]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in files:
        relative = path.relative_to(folder)
        file_label = label if label is not None else (relative.parts[0] if len(relative.parts) > 1 else None)
        yield Candidate(str(relative), file_label, path.read_bytes)


def _zip_candidates(archive: zipfile.ZipFile, label: str | None) -> Iterator[Candidate]:
    """Members of a zip as candidates; unsafe archives are refused before anything is read."""
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_ZIP_MEMBERS:
        raise InvalidInputError(f"the zip holds {len(members)} files; at most {MAX_ZIP_MEMBERS} are accepted")
    if sum(m.file_size for m in members) > MAX_ZIP_EXPANDED_BYTES:
        raise InvalidInputError("the zip expands to more than 4 GB; refused (possible zip bomb)")
    for member in members:
        path = PurePosixPath(member.filename)
        if path.is_absolute() or ".." in path.parts or member.filename.startswith(("/", "\\")):
            raise InvalidInputError(f"the zip holds an unsafe path {member.filename!r}; refused")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise InvalidInputError(f"the zip holds a symbolic link {member.filename!r}; refused")
    for member in members:
        path = PurePosixPath(member.filename)
        if path.name.startswith(".") or "__MACOSX" in path.parts:
            continue
        parts = path.parts
        file_label = label if label is not None else (parts[-2] if len(parts) > 1 else None)
        yield Candidate(member.filename, file_label, lambda m=member: archive.read(m))


def import_path(
    studio: Studio,
    tool_name: str,
    path: Path,
    label: str | None = None,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Import a folder (one sub-folder per class, or flat with ``label``) or a .zip of either."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist")
    if path.is_dir():
        candidates = list(_folder_candidates(path, label))
        if not candidates:
            raise InvalidInputError(f"{path} holds no files to import")
        return add_images(studio, tool_name, candidates, "import", progress)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            candidates = list(_zip_candidates(archive, label))
            if not candidates:
                raise InvalidInputError(f"{path.name} holds no files to import")
            return add_images(studio, tool_name, candidates, "import", progress)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return add_images(studio, tool_name, [Candidate(path.name, label, path.read_bytes)], "import", progress)
    raise InvalidInputError(f"{path.name} is neither a folder, a .zip nor an image")


def class_counts(studio: Studio, tool_name: str) -> dict[str, int]:
    """Number of (not deleted) samples per class, every class of the tool included."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        counts = repo.class_counts(session, tool.id)
        return {name: counts.get(name, 0) for name in tool.class_names}


@dataclass(frozen=True)
class SampleInfo:
    id: int
    label: str
    source: str
    image_key: str


def recent_samples(studio: Studio, tool_name: str, limit: int = 24) -> list[SampleInfo]:
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        return [SampleInfo(s.id, s.label, s.source, s.image_key)
                for s in repo.list_samples(session, tool.id, limit)]


def samples_by_id(studio: Studio, tool_name: str, sample_ids: list[int]) -> list[SampleInfo]:
    """The tool's samples with these ids, in the order given (ids that no longer exist are left out)."""
    wanted = set(sample_ids)
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        found = {s.id: SampleInfo(s.id, s.label, s.source, s.image_key)
                 for s in repo.list_samples(session, tool.id) if s.id in wanted}
    return [found[i] for i in sample_ids if i in found]
