"""Importing a tool bundle, all or nothing.

1. The whole zip is checked first (``reader.open_bundle``: names, links, sizes, manifest, signature,
   every SHA-256), then ``tool.json`` (``document.ToolDocument.parse``), then every model: its files are
   copied to a staging folder in the models folder and loaded with the registry's ``load_model``
   (safetensors + JSON; nothing is unpickled or executed), and the dataset's own manifest is read.
2. Then one transaction writes the tool, its settings and ROI, its versions, its recipe memberships and
   the audit entry; the staged artifact folders are renamed into place just before it commits (and
   removed again if it does not).
3. The dataset, when the bundle has one, is imported by the samples import (``core.samples.import_zip``)
   into the new tool; if that fails or refuses any image, the tool, its versions and recipe entries are
   removed again (image files it stored are left to ``python -m core store check --repair``).

On any refusal nothing is written: no row, and no file is left in the models folder.
An import always makes a new tool (``as_name``, else the bundle's name; an existing name is refused).
``activation``: ``as-exported`` (default: the versions active in the source decide here too),
``activate`` (the newest imported version of each method becomes active, e.g. for a bundle of chosen
candidates) or ``candidate`` (every version a candidate; the tool decides nothing until a promotion).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from core.audit import Actor, log
from core.auth.guard import require
from core.auth.roles import Permission
from core.bundle.document import DATASET_FILE, TOOL_FILE, ToolDocument, VersionEntry
from core.bundle.manifest import MAX_JSON_BYTES, RUNTIME_GRAPH_SUFFIX, BundleError
from core.bundle.reader import VerifiedBundle, open_bundle
from core.bundle.signing import default_trusted_keys_dir, signature_required_by_default
from core.errors import InvalidInputError
from core.export import manifest_candidates
from core.line.outbox import ensure_station
from core.line.recipes import parse_tool_entries
from core.model_artifacts import publish_artifact
from core.samples import MANIFEST_NAME as DATASET_MANIFEST
from core.samples import check_zip, import_zip, open_zip
from core.studio import Studio
from core.tools import GOOD_CLASS, NAME_PATTERN
from models.artifact_meta import ArtifactError
from models.registry import load_model
from storage import repository as repo
from storage import versions as versions_repo
from storage.line_tables import Recipe
from storage.tables import Tool

ACTIVATIONS = ("as-exported", "activate", "candidate")


@dataclass
class ImportResult:
    tool: str
    versions: dict[str, int]  # bundle key (the version id in the source) -> version id here
    active: dict[str, int]  # method -> active version id here
    signature: str
    samples: int | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "versions": self.versions, "active": self.active, "signature": self.signature,
                "samples": self.samples, "notes": self.notes}


def import_bundle(studio: Studio, source: Path | bytes, actor: Actor, name: str = "bundle.zip",
                  as_name: str | None = None, activation: str = "as-exported",
                  trusted_keys_dir: Path | None = None, require_signature: bool = False,
                  recipes: bool = True) -> ImportResult:
    """Import the bundle at ``source`` (a path, or an upload's bytes named ``name``) as a new tool; audited.

    A signature is required when ``require_signature`` or ``STUDIO_REQUIRE_SIGNED_BUNDLES`` says so, and
    must then be by a key in ``trusted_keys_dir`` (default: ``signing.default_trusted_keys_dir``).
    """
    require(studio, actor, Permission.IMPORT_TOOLS, f"bundle {name}")
    if activation not in ACTIVATIONS:
        raise InvalidInputError(f"activation is one of {', '.join(ACTIVATIONS)}")
    if isinstance(source, Path) and not source.is_file():
        raise BundleError(f"{source} is not a file")
    keys_dir = trusted_keys_dir or default_trusted_keys_dir(studio)
    bundle = open_bundle(source, name, keys_dir, require_signature or signature_required_by_default())
    staging = studio.settings.models_dir / f".bundle-{uuid.uuid4().hex}"
    dataset = None
    try:
        document = _document(bundle)
        tool_name = _new_name(studio, as_name or document.name)
        staging.mkdir(parents=True)
        staged = {v.key: _stage_model(bundle, v, staging) for v in document.versions}
        dataset = _stage_dataset(bundle, document, staging)
        result = _write(studio, bundle, document, tool_name, staged, activation, actor, recipes)
    except BaseException:
        if dataset is not None:
            dataset.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        bundle.close()
    if dataset is not None:
        result.samples = _import_dataset(studio, result, dataset, actor)
    return result


def _document(bundle: VerifiedBundle) -> ToolDocument:
    names = set(bundle.names())
    if TOOL_FILE not in names:
        raise BundleError(f"the bundle has no {TOOL_FILE}; refused")
    document = ToolDocument.parse(bundle.read(TOOL_FILE))
    if document.name != bundle.manifest.tool:
        raise BundleError(f"{TOOL_FILE} and the manifest name different tools; refused")
    folders = {f"{v.folder}/" for v in document.versions}
    stray = sorted(n for n in names - {TOOL_FILE, DATASET_FILE} if not any(n.startswith(f) for f in folders))
    if stray:
        raise BundleError(f"{stray[0]} belongs to no model version of the bundle; refused")
    graphs = sorted(n for n in names if n.lower().endswith(RUNTIME_GRAPH_SUFFIX))
    if graphs:  # a station builds its onnxruntime graphs from the model itself, never runs one it was handed
        raise BundleError(f"{graphs[0]} is a runtime graph; a bundle carries models, not graphs; refused")
    if not document.versions:
        raise BundleError("the bundle holds no model version; refused")
    return document


def _new_name(studio: Studio, name: str) -> str:
    name = name.strip()
    if not NAME_PATTERN.match(name):
        raise BundleError(f"tool name {name!r} must start with a lower-case letter or digit and use only a-z, "
                          "0-9, '-', '_'")
    with studio.transaction() as session:
        if repo.get_tool(session, name) is not None:
            raise BundleError(f"a tool named {name!r} exists already; nothing was imported. Import it under "
                              "another name (--as NEW)")
    return name


def _stage_model(bundle: VerifiedBundle, version: VersionEntry, staging: Path) -> Path:
    """Copy the version's files (checked) to ``staging/<key>`` and load them as the engine will."""
    folder = staging / version.key
    prefix = f"{version.folder}/"
    for path in (n for n in bundle.names() if n.startswith(prefix)):
        if path.endswith(".json") and bundle.manifest.entry(path).size > MAX_JSON_BYTES:
            raise BundleError(f"{path} is larger than {MAX_JSON_BYTES // 2**20} MB; refused")
        target = folder / path[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        bundle.extract(path, target)
    try:
        model = load_model(folder)
    except ArtifactError as error:
        raise BundleError(f"model version {version.key} cannot be loaded: {error}; refused") from None
    if model.method != version.method:
        raise BundleError(f"model version {version.key} holds a {model.method!r} model, not {version.method!r}; "
                          "refused")
    return folder


def _stage_dataset(bundle: VerifiedBundle, document: ToolDocument, staging: Path) -> Path | None:
    """The bundle's dataset copied to ``staging`` and read as ``samples import`` will (labels, files)."""
    if DATASET_FILE not in bundle.names():
        return None
    path = staging / DATASET_FILE
    bundle.extract(DATASET_FILE, path)
    with open_zip(path, DATASET_FILE) as archive:
        members = check_zip(archive)
        if DATASET_MANIFEST not in {m.filename for m in members}:
            raise BundleError(f"{DATASET_FILE} is not an exported dataset (no {DATASET_MANIFEST}); refused")
        for candidate in manifest_candidates(archive, members):
            if candidate.label not in document.classes:
                raise BundleError(f"{DATASET_FILE}: {candidate.name} is labelled {candidate.label!r}, not a class "
                                  "of the tool; refused")
    keep = staging.parent / f"{staging.name}.dataset.zip"  # outlives the staging folder until imported
    path.rename(keep)
    return keep


def _statuses(versions: list[VersionEntry], activation: str) -> dict[str, str]:
    if activation == "candidate":
        return {v.key: "candidate" for v in versions}
    if activation == "as-exported":
        return {v.key: v.status for v in versions}
    newest = {v.method: v.key for v in sorted(versions, key=lambda v: int(v.key))}
    return {v.key: "active" if newest[v.method] == v.key else "retired" for v in versions}


def _write(studio: Studio, bundle: VerifiedBundle, document: ToolDocument, tool_name: str, staged: dict[str, Path],
           activation: str, actor: Actor, with_recipes: bool) -> ImportResult:
    """One transaction: tool, versions, recipe entries, audit; the artifact folders move in before it commits."""
    statuses = _statuses(document.versions, activation)
    finals = {key: studio.settings.models_dir / tool_name / uuid.uuid4().hex for key in staged}
    manifests = {key: publish_artifact(studio, folder) for key, folder in staged.items()}  # before the transaction
    moved: list[Path] = []
    signature = bundle.signature.describe() if bundle.signature else "not signed"
    try:
        with studio.transaction() as session:
            if repo.get_tool(session, tool_name) is not None:
                raise BundleError(f"a tool named {tool_name!r} exists already; import it under another name (--as)")
            tool = repo.add_tool(session, tool_name, list(document.classes), GOOD_CLASS)
            tool.roi, tool.settings = document.roi, document.settings
            ids, active = {}, {}
            for version in document.versions:
                row = repo.add_model_version(
                    session, tool_id=tool.id, method=version.method, profile=version.profile,
                    status="candidate" if statuses[version.key] == "active" else statuses[version.key],
                    metrics=version.metrics, train_seconds=version.train_seconds, n_samples=version.n_samples,
                    artifact_dir=finals[version.key].relative_to(studio.settings.models_dir).as_posix(),
                    artifact_manifest=manifests[version.key],
                    created_at=datetime.fromisoformat(version.created_at))
                if statuses[version.key] == "active":
                    versions_repo.set_active(session, tool, row)
                    active[version.method] = row.id
                ids[version.key] = row.id
            tool.settings, notes = _remap_operating_point(document.settings, ids)
            notes += _restore_recipes(session, document, tool_name) if with_recipes else []
            log(session, actor, "bundle_import", f"tool {tool_name}", tool.id, bundle_tool=document.name,
                versions=ids, active=active, activation=activation, signature=signature,
                manifest_sha256=bundle.manifest_sha256, studio_version=bundle.manifest.studio_version, recipes=notes)
            for key, folder in staged.items():
                finals[key].parent.mkdir(parents=True, exist_ok=True)
                folder.rename(finals[key])
                moved.append(finals[key])
    except IntegrityError:  # another import made a tool of that name meanwhile
        for folder in moved:
            shutil.rmtree(folder, ignore_errors=True)
        raise BundleError(f"a tool named {tool_name!r} exists already; import it under another name (--as)") from None
    except BaseException:
        for folder in moved:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return ImportResult(tool_name, ids, active, signature, notes=notes)


def _remap_operating_point(settings: dict[str, Any], ids: dict[str, int]) -> tuple[dict[str, Any], list[str]]:
    """The settings with the operating point's version ids translated to this studio's (a point names the
    versions it was computed for); dropped with a note when the bundle lacks one of its versions."""
    point = settings.get("operating_point")
    if not point:
        return settings, []
    versions = {method: ids.get(str(source_id)) for method, source_id in point["versions"].items()}
    if None in versions.values():
        return {**settings, "operating_point": None}, [
            "the operating point was left out: the bundle lacks a model version it was chosen for"]
    return {**settings, "operating_point": {**point, "versions": versions}}, []


def _restore_recipes(session: Any, document: ToolDocument, tool_name: str) -> list[str]:
    """Put the tool's entry back in each recipe it belonged to (station and recipe name): into the recipe
    of that name, or a new recipe with the same number when that number is free on the station."""
    notes = []
    for membership in document.recipes:
        entry = parse_tool_entries(session, [{**membership.entry, "tool": tool_name}])[0]
        recipes = select(Recipe).where(Recipe.station == membership.station)
        row = session.scalar(recipes.where(Recipe.name == membership.name))
        where = f"recipe {membership.name!r} of station {membership.station!r}"
        if row is not None:
            row.tools = [*row.tools, entry]
            notes.append(f"added to {where}")
        elif session.scalar(recipes.where(Recipe.number == membership.number)) is None:
            session.add(Recipe(station=membership.station, name=membership.name, number=membership.number,
                               tools=[entry]))
            ensure_station(session, membership.station)
            notes.append(f"created {where} (number {membership.number})")
        else:
            notes.append(f"not added to {where}: number {membership.number} is another recipe's there")
    session.flush()
    return notes


def _import_dataset(studio: Studio, result: ImportResult, dataset: Path, actor: Actor) -> int:
    """The bundle's dataset into the new tool; on failure the import is undone and BundleError raised."""
    try:
        with open_zip(dataset, DATASET_FILE) as archive:
            report = import_zip(studio, result.tool, archive, DATASET_FILE, source="import", actor=actor)
        if report.rejected or report.cancelled:
            name, reason = report.rejected[0] if report.rejected else ("", "cancelled")
            raise BundleError(f"{DATASET_FILE}: {name} was refused ({reason})")
    except BaseException as error:
        _undo(studio, result, actor)
        if isinstance(error, BundleError | InvalidInputError):
            raise BundleError(f"the dataset could not be imported, so nothing was imported: {error}") from None
        raise
    finally:
        dataset.unlink(missing_ok=True)
    return report.imported + report.duplicates


def _undo(studio: Studio, result: ImportResult, actor: Actor) -> None:
    """Remove what ``_write`` committed: the tool (its versions and samples by cascade), its recipe entries
    (and recipes left empty) and its artifact folders."""
    with studio.transaction() as session:
        tool = repo.get_tool(session, result.tool)
        if tool is None:
            return
        for recipe in session.scalars(select(Recipe)):
            kept = [e for e in recipe.tools if not (isinstance(e, dict) and e.get("tool") == result.tool)]
            if len(kept) != len(recipe.tools):
                if kept:
                    recipe.tools = kept
                else:
                    session.delete(recipe)
        session.execute(delete(Tool).where(Tool.id == tool.id))
        log(session, actor, "bundle_import_undone", f"tool {result.tool}", None, versions=result.versions)
    shutil.rmtree(studio.settings.models_dir / result.tool, ignore_errors=True)
