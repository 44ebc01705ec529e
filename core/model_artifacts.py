"""Model artifacts in the object store: a version's files under content-addressed keys, and a manifest.

:func:`publish_artifact` stores the files of a freshly saved artifact folder in the studio's
``artifacts`` object store and returns the manifest kept with the version row
(``{"files": {name: {"key", "sha256", "size"}}}``). :func:`fetch_artifact` gives the local folder of a
version (``<data>/models/<artifact_dir>``, the cache of a station): fetched from the object store when
absent or damaged, every file checked against its hash, written into a temporary folder and renamed
into place. ``models.registry.load_model`` then loads from that folder, as always.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from core.errors import StudioError
from core.studio import Studio, object_store
from storage import repository as repo
from storage.objects import ObjectMissingError, digest, key_for
from storage.tables import ModelVersion


class ArtifactUnavailableError(StudioError):
    """A model version's files are neither in the local cache nor (intact) in the object store."""


def publish_artifact(studio: Studio, folder: Path) -> dict[str, Any]:
    """Store the files of ``folder`` in the object store; returns the manifest for the version row.

    With the local data folder as store the folder itself is the artifact: only the hashes are
    recorded (checked by :func:`fetch_artifact`)."""
    store = object_store(studio.settings, "artifacts")
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        data = path.read_bytes()
        key = key_for(digest(data), path.suffix.lstrip(".") or "bin")
        if not store.is_local:
            store.objects.put_key(key, data)
        files[path.name] = {"key": key, "sha256": digest(data), "size": len(data)}
    return {"files": files}


RACY_NS = 2_000_000_000
_VERIFIED: dict[Path, tuple[tuple[str, int, int], ...]] = {}  # folder -> (name, size, mtime_ns) when checked
_VERIFIED_LOCK = threading.Lock()


def _intact(folder: Path, files: dict[str, dict[str, Any]]) -> bool:
    """Every file of the manifest present with its hash. Hashed once per process: while the files keep
    their size and modification time, later calls (every model load) do not read them again. Files
    modified less than RACY_NS ago are always hashed (a change within one clock tick keeps the mtime)."""
    try:
        stamp = tuple((name, (folder / name).stat().st_size, (folder / name).stat().st_mtime_ns)
                      for name in sorted(files))
    except OSError:
        return False
    with _VERIFIED_LOCK:
        if _VERIFIED.get(folder) == stamp:
            return True
    for name, entry in files.items():
        path = folder / name
        if path.stat().st_size != entry["size"] or digest(path.read_bytes()) != entry["sha256"]:
            return False
    if max(mtime for _name, _size, mtime in stamp) < time.time_ns() - RACY_NS:
        with _VERIFIED_LOCK:
            _VERIFIED[folder] = stamp
    return True


def fetch_artifact(studio: Studio, version: ModelVersion | int) -> Path:
    """The local folder holding ``version``'s files, every file checked against the manifest's hash.

    Fetches from the object store into ``<data>/models/<artifact_dir>`` when the folder is missing or
    damaged; ArtifactUnavailableError when that cannot be done (the caller keeps its old model)."""
    if isinstance(version, int):
        with studio.transaction() as session:
            row = repo.get_model_version(session, version)
            if row is None:
                raise ArtifactUnavailableError(f"model version {version} does not exist")
            version = row
    folder = studio.settings.models_dir / version.artifact_dir
    manifest = version.artifact_manifest
    if not manifest:  # a version from before the object store: its folder is the only copy
        if folder.is_dir():
            return folder
        raise ArtifactUnavailableError(f"model version {version.id}: folder {version.artifact_dir} is missing "
                                       "and the version has no copy in the object store")
    files: dict[str, dict[str, Any]] = manifest["files"]
    if folder.is_dir() and _intact(folder, files):
        return folder
    store = object_store(studio.settings, "artifacts")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        for name, entry in files.items():
            try:
                data = store.read(entry["key"])  # verified against the key's hash
            except (ObjectMissingError, OSError) as error:
                raise ArtifactUnavailableError(f"model version {version.id}: {name} cannot be fetched: {error}") \
                    from error
            if digest(data) != entry["sha256"] or len(data) != entry["size"]:
                raise ArtifactUnavailableError(f"model version {version.id}: {name} does not match its manifest")
            (tmp / name).write_bytes(data)
        if folder.exists():  # damaged: set aside, replaced by the verified copy
            aside = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-damaged-"))
            folder.rename(aside / "old")
            shutil.rmtree(aside, ignore_errors=True)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
