"""Writing a tool bundle: ``tool.json``, the chosen model versions' artifact folders byte for byte,
optionally the dataset (``dataset.zip``, written by ``core.export.export_dataset``), then
``manifest.json`` (SHA-256 and size of every file) and, with a key, ``manifest.sig``."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from core.audit import Actor
from core.auth.guard import require
from core.auth.roles import Permission
from core.bundle.document import DATASET_FILE, TOOL_FILE, RecipeMembership, ToolDocument, VersionEntry
from core.bundle.manifest import (
    MANIFEST_NAME,
    RUNTIME_GRAPH_SUFFIX,
    SIGNATURE_NAME,
    BundleError,
    FileEntry,
    Manifest,
    studio_version,
)
from core.bundle.signing import fingerprint, load_private_key, sign
from core.export import export_dataset
from core.model_artifacts import ArtifactUnavailableError, fetch_artifact
from core.studio import Studio
from core.tool_settings import ToolSettings
from core.tools import require_tool
from storage import repository as repo
from storage import versions as versions_repo
from storage.line_tables import Recipe
from storage.tables import ModelVersion

CHUNK = 1024**2


@dataclass(frozen=True)
class ExportResult:
    path: Path
    tool: str
    versions: list[int]
    files: int
    samples: int | None
    signed_by: str | None

    def as_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "tool": self.tool, "versions": self.versions, "files": self.files,
                "samples": self.samples, "signed_by": self.signed_by}


def export_bundle(studio: Studio, tool_name: str, target: Path, version_ids: list[int] | None = None,
                  with_images: bool = False, sign_key: Path | None = None, *, actor: Actor) -> ExportResult:
    """Write the bundle of ``tool_name`` to ``target`` (a temporary file renamed into place): its active
    versions, or ``version_ids``; its dataset when ``with_images``; signed with the Ed25519 key file
    ``sign_key`` when given."""
    require(studio, actor, Permission.EXPORT_TOOLS, f"tool {tool_name}")
    key = load_private_key(sign_key) if sign_key is not None else None
    document, folders = _document(studio, tool_name, version_ids)
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".bundle-", suffix=".part")
    except OSError as error:
        raise BundleError(f"cannot write the bundle {target}: {error.strerror or error}") from None
    os.close(descriptor)
    tmp = Path(tmp_name)
    dataset = target.parent / f"{tmp.name}.dataset"
    samples = None
    try:
        entries: list[FileEntry] = []
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            _add_bytes(archive, TOOL_FILE, document.to_bytes(), entries)
            for version in document.versions:
                for path in sorted(p for p in folders[version.key].rglob("*")
                                   if p.is_file() and not p.name.lower().endswith(RUNTIME_GRAPH_SUFFIX)):
                    name = f"{version.folder}/{path.relative_to(folders[version.key]).as_posix()}"
                    _add_file(archive, name, path, entries, zipfile.ZIP_DEFLATED)
            if with_images:
                samples = export_dataset(studio, tool_name, dataset)
                _add_file(archive, DATASET_FILE, dataset, entries, zipfile.ZIP_STORED)
            manifest = Manifest(document.name, tuple(entries), studio_version(),
                                datetime.now(UTC).isoformat(timespec="seconds")).to_bytes()
            archive.writestr(MANIFEST_NAME, manifest)
            if key is not None:
                archive.writestr(SIGNATURE_NAME, sign(manifest, key))
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise BundleError(f"cannot write the bundle {target}: {error.strerror or error}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        dataset.unlink(missing_ok=True)
    return ExportResult(target.resolve(), tool_name, [int(v.key) for v in document.versions], len(entries), samples,
                        None if key is None else fingerprint(key.public_key()))


def _document(studio: Studio, tool_name: str, version_ids: list[int] | None) -> tuple[ToolDocument, dict[str, Path]]:
    """The tool's ``tool.json`` and the artifact folder of each version, by key."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        if version_ids:
            chosen = []
            for version_id in dict.fromkeys(version_ids):
                version = repo.get_model_version(session, version_id)
                if version is None or version.tool_id != tool.id:
                    raise BundleError(f"tool {tool_name!r} has no model version {version_id}")
                chosen.append(version)
        else:
            chosen = sorted(versions_repo.active_versions(session, tool.id).values(), key=lambda v: v.id)
        if not chosen:
            raise BundleError(f"tool {tool_name!r} has no active model to export: train one, or name versions "
                              "with --version")
        versions = [_version(v) for v in chosen]
        recipes = [RecipeMembership(r.station, r.name, r.number, dict(entry))
                   for r in session.scalars(select(Recipe).order_by(Recipe.station, Recipe.number))
                   for entry in r.tools if isinstance(entry, dict) and entry.get("tool") == tool.name]
        document = ToolDocument(tool.name, list(tool.class_names), tool.good_class,
                                list(tool.roi) if tool.roi else None, ToolSettings.from_json(tool.settings).to_json(),
                                versions, recipes)
    folders = {}
    for version in chosen:  # trained on another PC: fetched from the object store, checked
        try:
            folders[str(version.id)] = fetch_artifact(studio, version)
        except ArtifactUnavailableError as error:
            raise BundleError(f"the model files of version {version.id} are missing: {error}; run 'python -m core "
                              "store check' and export other versions") from None
    return document, folders


def _version(version: ModelVersion) -> VersionEntry:
    return VersionEntry(str(version.id), version.method, version.profile, version.status, dict(version.metrics or {}),
                        float(version.train_seconds), int(version.n_samples),
                        version.created_at.isoformat(timespec="seconds"))


def _add_bytes(archive: zipfile.ZipFile, name: str, data: bytes, entries: list[FileEntry]) -> None:
    archive.writestr(name, data)
    entries.append(FileEntry(name, hashlib.sha256(data).hexdigest(), len(data)))


def _add_file(archive: zipfile.ZipFile, name: str, path: Path, entries: list[FileEntry], compression: int) -> None:
    digest, size = hashlib.sha256(), 0
    info = zipfile.ZipInfo(name, datetime.now().timetuple()[:6])
    info.compress_type, info.external_attr = compression, 0o644 << 16
    with open(path, "rb") as source, archive.open(info, "w", force_zip64=path.stat().st_size > 2**31) as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    entries.append(FileEntry(name, digest.hexdigest(), size))

