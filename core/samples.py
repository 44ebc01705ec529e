"""Adding labelled images to a tool: uploads, camera frames, folders, .zip files and MVTec AD folders.

Each file is read (with a size limit), decoded, downscaled to the configured maximum side,
deduplicated by content hash and stored with its thumbnail (and mask) by worker threads; its row is
then written by the calling thread in a batch transaction. Files are written before their rows, so an
interruption (cancel, crash, database error) never leaves a row without its files, and the image
store's atomic writes never leave half files.

The stores are content-addressed and shared: another import (or a review verdict) may rely on a file
this import wrote. So an import never unlinks a file while it could be referenced: it holds the store
lock *shared* (``storage.store_lock``) from its first write until its last commit, and afterwards
removes the files it wrote but did not record only if it gets the lock *exclusively* at once (no other
writer in flight) and no row references them. Otherwise they stay until ``python -m core store check
--repair`` collects unreferenced files (``core.store_check``); so do the files of a killed import.
"""

from __future__ import annotations

import io
import stat
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from sqlalchemy.exc import IntegrityError

from core import images as core_images
from core.audit import Actor
from core.auth.guard import require
from core.auth.roles import Permission
from core.config import max_image_side
from core.errors import InvalidInputError
from core.images import DecodedImage, ImageRejectedError, decode_image, encode_png
from core.roi import crop_to_roi
from core.studio import Studio
from core.thumbnails import (
    NEAR_DUPLICATE_BITS,
    bit_distances,
    dhash,
    fit_within,
    hash_array,
    thumbnail_jpeg,
    thumbnail_store,
)
from core.tools import add_class, require_tool
from storage import repository as repo
from storage import store_lock, store_refs
from storage.image_store import ImageStore

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MAX_ZIP_MEMBERS = 100_000
MAX_ZIP_EXPANDED_BYTES = 4 * 1024**3
MANIFEST_NAME = "manifest.csv"

ImportProgress = Callable[[int, int], None]


@dataclass
class ImportReport:
    """What an import did: counts, one reason per rejected file, near-duplicate warnings."""

    imported: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    near_duplicates: list[tuple[str, int]] = field(default_factory=list)  # (file, id of a similar sample)
    cancelled: bool = False
    sample_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "skipped_duplicates": self.duplicates,
                "rejected": [{"file": name, "reason": reason} for name, reason in self.rejected],
                "near_duplicates": [{"file": name, "similar_to": sample_id}
                                    for name, sample_id in self.near_duplicates],
                "cancelled": self.cancelled}


@dataclass(frozen=True)
class Candidate:
    """A file offered for import: display name, its label (None when unknown) and a byte reader.

    ``mask`` reads the file's defect mask (MVTec AD ground truth) when it has one; ``split`` is
    ``"train"`` or ``"held_out"``.
    """

    name: str
    label: str | None
    read: Callable[[], bytes]
    mask: Callable[[], bytes] | None = None
    split: str = "train"
    original_name: str | None = None  # kept on the sample; defaults to ``name``
    refused: str | None = None  # a reason known before reading (e.g. its folder is no valid class name)


@dataclass
class _ToolState:
    """What the import needs to know of a tool, read once: classes, stored hashes and dHashes."""

    id: int
    classes: list[str]
    hashes: set[str]
    phash_ids: list[int]
    phash_values: np.ndarray


def _tool_state(studio: Studio, tool_name: str) -> _ToolState:
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        hashes, ids, phashes = repo.sample_fingerprints(session, tool.id)
        return _ToolState(tool.id, list(tool.class_names), hashes, ids, hash_array(phashes))


def add_images(
    studio: Studio,
    tool_name: str,
    candidates: Iterable[Candidate],
    source: str = "upload",
    progress: ImportProgress | None = None,
    cancel: threading.Event | None = None,
    *,
    actor: Actor,
) -> ImportReport:
    """Validate, store and record each candidate as a sample of ``tool_name`` (``actor`` needs CAPTURE).

    Files are decoded and stored by a few worker threads (decoding and disk syncs overlap); the
    calling thread records them, in input order, in transactions of up to BATCH_ROWS samples.
    ``progress(done, total)`` is called after each file; setting ``cancel`` stops taking new files
    (``report.cancelled``) and keeps every sample imported so far, whole. An exception (or a page
    interrupted from its progress callback) still records the files already processed and removes
    the files of those it did not record.
    """
    require(studio, actor, Permission.CAPTURE, f"tool {tool_name}")
    items = list(candidates)
    report = ImportReport()
    state = _tool_state(studio, tool_name)
    max_side = max_image_side()
    batch = _Batch(studio, state, source, report)
    try:
        with store_lock.shared(studio.settings.locks_dir):
            _run_import(studio, state, items, max_side, batch, report, progress, cancel)
    finally:
        release_unrecorded(studio, batch.leftover)
    return report


def _run_import(studio: Studio, state: _ToolState, items: list[Candidate], max_side: int, batch: _Batch,
                report: ImportReport, progress: ImportProgress | None, cancel: threading.Event | None) -> None:
    in_flight: deque[tuple[Candidate, Future[_Staged | str]]] = deque()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="import") as pool:
        try:
            taken = done = 0
            while done < len(items):
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    break
                while taken < len(items) and len(in_flight) < WINDOW:
                    item = items[taken]
                    in_flight.append((item, pool.submit(_stage, studio, state, item, max_side)))
                    taken += 1
                item, future = in_flight.popleft()
                outcome = future.result()
                if isinstance(outcome, str):
                    report.rejected.append((printable(item.name), outcome))
                elif outcome.prepared.sha256 in state.hashes:  # already in the tool, or twice in this import
                    report.duplicates += 1
                else:
                    state.hashes.add(outcome.prepared.sha256)
                    batch.add(outcome)
                done += 1
                if progress:
                    progress(done, len(items))
            batch.flush()
        finally:
            batch.flush_or_discard()
            for _, future in in_flight:  # taken but not recorded (cancel or error): their new files may go
                outcome = None if future.cancel() else future.result()
                if isinstance(outcome, _Staged):
                    batch.discard(outcome)


WORKERS = 3
WINDOW = 2 * WORKERS
BATCH_ROWS = 32
BATCH_SECONDS = 0.5


@dataclass(frozen=True)
class _Prepared:
    """A decoded candidate, ready to store: the bytes to keep, their hash, thumbnail, dHash, mask."""

    data: bytes
    ext: str
    sha256: str
    width: int
    height: int
    thumbnail: bytes
    phash: str
    mask_png: bytes | None


@dataclass(frozen=True)
class _Staged:
    """A candidate whose files are in the stores, waiting for its row."""

    item: Candidate
    label: str
    prepared: _Prepared
    image_key: str | None
    thumb_key: str | None
    mask_key: str | None
    created: list[tuple[ImageStore, str]]  # files this import wrote (removed if the row is not written)


def _prepare(item: Candidate, max_side: int) -> _Prepared:
    """Decode and derive everything of one candidate; raises ImageRejectedError / OSError."""
    data = item.read()
    image: DecodedImage = decode_image(data)
    rgb, ext = image.rgb, image.ext
    if max(image.width, image.height) > max_side:
        rgb = fit_within(rgb, max_side)
        data, ext = encode_png(rgb), "png"
    mask_png = _prepare_mask(item, rgb.shape[:2]) if item.mask else None
    return _Prepared(data, ext, ImageStore.digest(data), int(rgb.shape[1]), int(rgb.shape[0]),
                     thumbnail_jpeg(rgb), dhash(rgb), mask_png)


@dataclass(frozen=True)
class StoredImageFields:
    """What a sample row needs of an image that is in the image store already."""

    sha256: str
    width: int
    height: int
    thumb_key: str
    phash: str


def fields_of_stored_image(studio: Studio, image_key: str) -> StoredImageFields:
    """Size, thumbnail (stored) and dHash of a stored image, derived as an import derives them: what a
    review verdict needs to turn an inspection's kept image into a sample like any other."""
    data = studio.images.read(image_key)
    rgb = decode_image(data).rgb
    thumb_key, _ = thumbnail_store(studio).put(thumbnail_jpeg(rgb), "jpg")
    return StoredImageFields(ImageStore.digest(data), int(rgb.shape[1]), int(rgb.shape[0]), thumb_key, dhash(rgb))


def _prepare_mask(item: Candidate, shape: tuple[int, ...]) -> bytes:
    """The candidate's mask as a one-channel PNG of the image's size (nearest-neighbour resize)."""
    assert item.mask is not None
    try:
        mask = decode_image(item.mask()).rgb.max(axis=2)
    except ImageRejectedError as error:
        raise ImageRejectedError(f"its mask is unusable: {error}") from None
    if mask.shape != shape:
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return encode_png(mask)


def _stage(studio: Studio, state: _ToolState, item: Candidate, max_side: int) -> _Staged | str:
    """Check, decode and store the files of one candidate (in a worker thread; no database access).

    Returns the reason when the file is rejected. A file whose content the tool has already is not
    stored again (its keys are None).
    """
    if item.refused:
        return item.refused
    if item.label is None:
        return "no label: put the file in a folder named after its class, or give a label"
    label = item.label.strip().lower()
    if label not in state.classes:
        return f"label {label!r} is not a class of this tool ({', '.join(state.classes)})"
    try:
        prepared = _prepare(item, max_side)
    except ImageRejectedError as error:
        return str(error)
    except zipfile.BadZipFile as error:
        return f"damaged zip member ({error})"
    except OSError as error:
        return f"cannot read file ({error.strerror or error})"
    except NotImplementedError as error:  # zipfile: a compression method Python cannot read
        return (f"unsupported zip compression ({error}); re-create the zip with standard (deflate) "
                "compression or import the folder")
    except RuntimeError as error:  # zipfile: an encrypted member
        if "encrypted" in str(error) or "password" in str(error):
            return "encrypted (password-protected) zip member: unzip it with its password and import the folder"
        return f"cannot read file ({error})"
    except Exception as error:  # anything else one file can cause (zlib, EOF, ...): that file is rejected
        return f"cannot read file ({type(error).__name__}: {error})"
    if prepared.sha256 in state.hashes:
        return _Staged(item, label, prepared, None, None, None, [])
    created: list[tuple[ImageStore, str]] = []
    image_key = _put_new(studio.images, prepared.data, prepared.ext, created)
    thumb_key = _put_new(thumbnail_store(studio), prepared.thumbnail, "jpg", created)
    mask_key = _put_new(studio.images, prepared.mask_png, "png", created) if prepared.mask_png else None
    return _Staged(item, label, prepared, image_key, thumb_key, mask_key, created)


def _put_new(store: ImageStore, data: bytes, ext: str, created: list[tuple[ImageStore, str]]) -> str:
    """Store ``data``; remember the key in ``created`` when the file did not exist before.

    ``created`` only names candidates for clean-up: another writer may have come to rely on the
    same file meanwhile, so they are removed only by :func:`release_unrecorded`'s checks.
    """
    key = store.key_for(store.digest(data), ext)
    existed = store.exists(key)
    store.put(data, ext)
    if not existed:
        created.append((store, key))
    return key


class _Batch:
    """Staged samples waiting for their rows, written in one transaction per batch."""

    def __init__(self, studio: Studio, state: _ToolState, source: str, report: ImportReport) -> None:
        self.studio, self.state, self.source, self.report = studio, state, source, report
        self.staged: list[_Staged] = []
        self.since = time.monotonic()
        self.kept: set[tuple[Path, str]] = set()  # files of staged or recorded samples: never removed
        self.leftover: list[tuple[ImageStore, str]] = []  # files written but not recorded: maybe removed

    def add(self, staged: _Staged) -> None:
        self.kept.update((store.root, key) for store, key in staged.created)
        self.staged.append(staged)
        if len(self.staged) >= BATCH_ROWS or time.monotonic() - self.since >= BATCH_SECONDS:
            self.flush()

    def discard(self, staged: _Staged) -> None:
        """A sample that will not be recorded: its new files become candidates for removal."""
        self.leftover += [(store, key) for store, key in staged.created if (store.root, key) not in self.kept]

    def flush(self) -> None:
        """Write the rows of the staged samples; on failure their new files become candidates for removal."""
        staged, self.staged, self.since = self.staged, [], time.monotonic()
        if not staged:
            return
        try:
            ids = self._insert(staged)
        except IntegrityError:  # the same content recorded meanwhile by another import: row by row
            ids = []
            for one in staged:
                try:
                    ids += self._insert([one])
                except IntegrityError:
                    self.leftover += one.created  # the other import's row may point to these files
                    self.report.duplicates += 1
                    ids.append(None)
        except BaseException:
            for one in staged:
                self.leftover += one.created
            raise
        for one, sample_id in zip(staged, ids):
            if sample_id is not None:
                self._recorded(one, sample_id)

    def flush_or_discard(self) -> None:
        """In a ``finally``: record what is staged; if that fails too, the files are already removed."""
        try:
            self.flush()
        except Exception:  # the original error is the one to report
            pass

    def _insert(self, staged: list[_Staged]) -> list[int | None]:
        with self.studio.transaction() as session:
            return [repo.add_sample(
                session, tool_id=self.state.id, image_key=s.image_key, sha256=s.prepared.sha256, label=s.label,
                source=self.source, width=s.prepared.width, height=s.prepared.height, split=s.item.split,
                thumb_key=s.thumb_key, mask_key=s.mask_key, phash=s.prepared.phash,
                original_name=(s.item.original_name or s.item.name)[-300:]).id for s in staged]

    def _recorded(self, staged: _Staged, sample_id: int) -> None:
        similar = _similar_sample(self.state, staged.prepared.phash)
        if similar is not None:
            self.report.near_duplicates.append((printable(staged.item.name), similar))
        self.state.phash_ids.append(sample_id)
        self.state.phash_values = np.append(self.state.phash_values, np.uint64(int(staged.prepared.phash, 16)))
        self.report.imported += 1
        self.report.sample_ids.append(sample_id)


def _similar_sample(state: _ToolState, phash: str) -> int | None:
    if not len(state.phash_values):
        return None
    distances = bit_distances(int(phash, 16), state.phash_values)
    nearest = int(np.argmin(distances))
    return state.phash_ids[nearest] if distances[nearest] <= NEAR_DUPLICATE_BITS else None


def release_unrecorded(studio: Studio, files: list[tuple[ImageStore, str]]) -> int:
    """Remove files an import wrote but did not record, where that is safe; returns how many went.

    Safe means: the store lock is ours exclusively (no other import is between writing a file and
    committing its row) and no row references the file. When another writer holds the lock, the
    files stay for ``store check --repair`` (a later garbage collection). Never raises.
    """
    if not files:
        return 0
    removed = 0
    try:
        with store_lock.exclusive(studio.settings.locks_dir) as alone:
            if not alone:
                return 0
            images = [key for store, key in files if store.root == studio.images.root]
            thumbs = [key for store, key in files if store.root != studio.images.root]
            with studio.transaction() as session:
                used = store_refs.referenced_among(session, images)
                used_thumbs = store_refs.referenced_among(session, thumbs, thumbnails=True)
            for store, key in files:
                if key not in (used if store.root == studio.images.root else used_thumbs) and store.exists(key):
                    store.delete(key)
                    removed += 1
    except Exception:  # a failed clean-up leaves garbage, never a problem: the store check removes it
        return removed
    return removed


_CONTROL = {code: f"\\x{code:02x}" for code in (*range(32), 127)}


def printable(name: str) -> str:
    """A file name safe to print on one line: control characters (newlines, tabs) escaped as ``\\xNN``."""
    return name.translate(_CONTROL)


def remove_partial_files(studio: Studio) -> int:
    """Delete temporary files of imports that were killed mid-write (bulk imports call this first)."""
    return studio.images.remove_partial_files() + thumbnail_store(studio).remove_partial_files()


# --- sources of candidates ------------------------------------------------------------------------
def read_limited(path: Path) -> bytes:
    """A file's bytes, reading at most one byte past the image size limit (decode_image refuses it)."""
    with open(path, "rb") as handle:
        return handle.read(core_images.MAX_FILE_BYTES + 1)


def is_hidden(parts: Sequence[str]) -> bool:
    """Whether a relative path is hidden: any part starting with '.' (``.git/``, ``.Trash/``, ``._x.png``)
    or a macOS resource folder."""
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _folder_candidates(folder: Path, label: str | None) -> Iterator[Candidate]:
    files = sorted(p for p in folder.rglob("*")
                   if not is_hidden(p.relative_to(folder).parts) and stat.S_ISREG(_lstat_mode(p)))
    for path in files:
        relative = path.relative_to(folder)
        file_label = label if label is not None else (relative.parts[0] if len(relative.parts) > 1 else None)
        yield Candidate(str(relative), file_label, lambda p=path: read_limited(p))


def _lstat_mode(path: Path) -> int:
    """The file type bits of ``path`` itself (0 when it vanished): FIFOs, sockets and devices are not
    files to import (opening a FIFO would block until something writes to it)."""
    try:
        mode = path.stat().st_mode  # a symlink to a regular file is fine
    except OSError:
        return 0
    return mode


def read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    """A member's bytes, at most one byte past the image size limit (sizes are checked by zipfile's CRC)."""
    with archive.open(member) as handle:
        return handle.read(core_images.MAX_FILE_BYTES + 1)


def check_zip(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The file members of a zip; unsafe archives raise InvalidInputError before anything is read.

    Refused: too many members, an expanded size beyond MAX_ZIP_EXPANDED_BYTES (zip bomb), absolute
    paths, ``..`` components, drive letters and symbolic links.
    """
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_ZIP_MEMBERS:
        raise InvalidInputError(f"the zip holds {len(members)} files; at most {MAX_ZIP_MEMBERS} are accepted")
    if sum(m.file_size for m in members) > MAX_ZIP_EXPANDED_BYTES:
        limit_gb = MAX_ZIP_EXPANDED_BYTES / 1024**3
        raise InvalidInputError(f"the zip expands to more than {limit_gb:g} GB; refused (possible zip bomb)")
    for member in members:
        name = member.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or member.filename.startswith(("/", "\\")) \
                or (len(name) > 1 and name[1] == ":"):
            raise InvalidInputError(f"the zip holds an unsafe path {member.filename!r}; refused")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise InvalidInputError(f"the zip holds a symbolic link {member.filename!r}; refused")
    return members


def _zip_candidates(archive: zipfile.ZipFile, label: str | None,
                    fallback_label: str | None = None) -> Iterator[Candidate]:
    """Members of a zip as candidates; unsafe archives are refused before anything is read.

    A member's label is ``label`` when given, else its folder's name, else ``fallback_label``.
    """
    for member in check_zip(archive):
        path = PurePosixPath(member.filename)
        if is_hidden(path.parts):
            continue
        parts = path.parts
        file_label = label if label is not None else (parts[-2] if len(parts) > 1 else fallback_label)
        yield Candidate(member.filename, file_label, lambda m=member: read_member(archive, m))


def open_zip(source: Path | bytes, name: str) -> zipfile.ZipFile:
    """The zip file at ``source`` (a path, or an upload's bytes); InvalidInputError when it is damaged or
    uses a zip feature Python cannot read (zipfile's NotImplementedError), saying what to do."""
    try:
        return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, NotImplementedError) as error:
        raise InvalidInputError(f"{printable(name)} is damaged and cannot be opened ({error}); nothing from it "
                                "was imported. Zip the folder again and use the new file.") from None


def import_path(
    studio: Studio,
    tool_name: str,
    path: Path,
    label: str | None = None,
    progress: ImportProgress | None = None,
    cancel: threading.Event | None = None,
    *,
    actor: Actor,
) -> ImportReport:
    """Import a folder (one sub-folder per class, or flat with ``label``) or a .zip of either.

    A zip made by :func:`core.export.export_dataset` (it carries ``manifest.csv``) is imported with
    its labels, splits and masks; an MVTec AD folder is imported with :func:`core.mvtec.import_mvtec`.
    """
    require(studio, actor, Permission.CAPTURE, f"tool {tool_name}")
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist")
    mode = _lstat_mode(path)
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise InvalidInputError(f"{printable(str(path))} is not a regular file or folder (a pipe, socket or "
                                "device); give the path of a folder, a .zip or an image")
    remove_partial_files(studio)
    if path.is_dir():
        candidates = list(_folder_candidates(path, label))
        if not candidates:
            raise InvalidInputError(f"{path} holds no files to import")
        return add_images(studio, tool_name, candidates, "import", progress, cancel, actor=actor)
    if zipfile.is_zipfile(path):
        with open_zip(path, path.name) as archive:
            return import_zip(studio, tool_name, archive, path.name, label, "import", progress, cancel, actor=actor)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        candidate = Candidate(path.name, label, lambda: read_limited(path))
        return add_images(studio, tool_name, [candidate], "import", progress, cancel, actor=actor)
    raise InvalidInputError(f"{path.name} is neither a folder, a .zip nor an image")


def import_zip(
    studio: Studio,
    tool_name: str,
    archive: zipfile.ZipFile,
    name: str,
    label: str | None = None,
    source: str = "import",
    progress: ImportProgress | None = None,
    cancel: threading.Event | None = None,
    fallback_label: str | None = None,
    *,
    actor: Actor,
) -> ImportReport:
    """Import an open zip: an exported dataset (with ``manifest.csv``), a zipped MVTec AD category
    (its defect folders become classes) or class folders / flat files.

    Files at the top of the zip get ``fallback_label`` when ``label`` is None.
    """
    from core.export import manifest_candidates
    from core.mvtec import mvtec_zip_candidates, mvtec_zip_prefix, refuse_invalid_classes

    require(studio, actor, Permission.CAPTURE, f"tool {tool_name}")
    members = check_zip(archive)
    mvtec_prefix = mvtec_zip_prefix([m.filename for m in members])
    if any(m.filename == MANIFEST_NAME for m in members):
        candidates = manifest_candidates(archive, members)
    elif mvtec_prefix is not None:
        candidates = refuse_invalid_classes(mvtec_zip_candidates(archive, members, mvtec_prefix))
        for class_name in sorted({c.label for c in candidates if c.label and not c.refused}):
            add_class(studio, tool_name, class_name, actor)
    else:
        candidates = list(_zip_candidates(archive, label, fallback_label))
    if not candidates:
        raise InvalidInputError(f"{name} holds no files to import")
    return add_images(studio, tool_name, candidates, source, progress, cancel, actor=actor)


# --- classes and camera frames --------------------------------------------------------------------
def tool_roi(studio: Studio, tool_name: str) -> list[float] | None:
    """The tool's region of interest (fractions ``[x0, y0, x1, y1]``), None for the whole frame."""
    with studio.transaction() as session:
        roi = require_tool(session, tool_name).roi
        return list(roi) if roi else None


def add_frames(studio: Studio, tool_name: str, frames: Sequence[np.ndarray], label: str,
               roi: Sequence[float] | None = None, *, actor: Actor) -> ImportReport:
    """Store camera frames ``(H, W, 3)`` RGB, cropped to ``roi``, as ``capture`` samples labelled ``label``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidates = [Candidate(f"camera-{stamp}-{index}.png", label,
                            lambda f=frame: encode_png(np.ascontiguousarray(crop_to_roi(f, roi))))
                  for index, frame in enumerate(frames, start=1)]
    return add_images(studio, tool_name, candidates, source="capture", actor=actor)


# --- counts and recent samples --------------------------------------------------------------------
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
