"""Importing a folder in the MVTec AD layout, masks kept with their samples.

One category folder (or a zip of one, imported by ``core.samples.import_zip``)::

    train/good/*.png                      defect-free training images
    test/good/*.png, test/<defect>/*.png  test images
    ground_truth/<defect>/<stem>_mask.png the pixel mask of each defective test image

Training images become ``train`` samples labelled ``good``; test images are labelled with their
folder's name and go to the ``held_out`` split by default (MVTec's test set is for evaluation).
"""

from __future__ import annotations

import threading
import zipfile
from dataclasses import replace
from pathlib import Path, PurePosixPath

from core.audit import Actor
from core.auth.guard import require
from core.auth.roles import Permission
from core.errors import InvalidInputError
from core.samples import (
    IMAGE_SUFFIXES,
    Candidate,
    ImportProgress,
    ImportReport,
    add_images,
    printable,
    read_limited,
    read_member,
    remove_partial_files,
)
from core.studio import Studio
from core.tools import NAME_PATTERN, add_class
from storage.tables import SAMPLE_SPLITS


def is_mvtec_folder(path: Path) -> bool:
    """Whether ``path`` looks like one MVTec AD category (``train/good`` and ``test`` folders)."""
    return (path / "train" / "good").is_dir() and (path / "test").is_dir()


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def mvtec_candidates(root: Path, test_split: str = "held_out") -> list[Candidate]:
    """The candidates of an MVTec AD category folder, each defective test image with its mask."""
    if test_split not in SAMPLE_SPLITS:
        raise InvalidInputError(f"test split must be one of {', '.join(SAMPLE_SPLITS)}")
    candidates = [Candidate(f"train/good/{p.name}", "good", lambda p=p: read_limited(p))
                  for p in _images(root / "train" / "good")]
    for folder in sorted(d for d in (root / "test").iterdir() if d.is_dir() and not d.name.startswith(".")):
        masks = root / "ground_truth" / folder.name
        for path in _images(folder):
            mask_path = masks / f"{path.stem}_mask.png"
            mask = (lambda m=mask_path: read_limited(m)) if mask_path.is_file() else None
            candidates.append(Candidate(f"test/{folder.name}/{path.name}", folder.name.lower(),
                                        lambda p=path: read_limited(p), mask=mask, split=test_split))
    return candidates


def import_mvtec(
    studio: Studio,
    tool_name: str,
    root: Path,
    test_split: str = "held_out",
    add_classes: bool = True,
    progress: ImportProgress | None = None,
    cancel: threading.Event | None = None,
    *,
    actor: Actor,
) -> ImportReport:
    """Import an MVTec AD category folder; with ``add_classes`` each defect folder becomes a class."""
    require(studio, actor, Permission.CAPTURE, f"tool {tool_name}")
    root = Path(root)
    if not is_mvtec_folder(root):
        raise InvalidInputError(f"{root} is not an MVTec AD category folder (train/good and test/ are needed)")
    remove_partial_files(studio)
    candidates = refuse_invalid_classes(mvtec_candidates(root, test_split))
    if add_classes:
        for label in sorted({c.label for c in candidates if c.label and not c.refused}):
            add_class(studio, tool_name, label, actor)
    return add_images(studio, tool_name, candidates, "import", progress, cancel, actor=actor)


def refuse_invalid_classes(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates whose defect folder is no valid class name are refused one by one, with the reason,
    before any class is added: one odd folder does not stop the import of the others."""
    result = []
    for candidate in candidates:
        label = (candidate.label or "").strip().lower()
        if candidate.label is not None and not NAME_PATTERN.match(label):
            candidate = replace(candidate, refused=f"folder {printable(candidate.label)!r} is not a valid class "
                                "name (letters, digits, '-' or '_'): rename the folder to import its images")
        result.append(candidate)
    return result


def mvtec_zip_prefix(names: list[str]) -> str | None:
    """The folder of the MVTec AD category inside a zip (``""`` at its top), or None when it is not one."""
    for name in names:
        parts = PurePosixPath(name).parts
        for index in range(len(parts) - 2):
            if parts[index : index + 2] == ("train", "good"):
                prefix = "/".join(parts[:index])
                prefix = f"{prefix}/" if prefix else ""
                if any(n.startswith(f"{prefix}test/") for n in names):
                    return prefix
    return None


def mvtec_zip_candidates(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], prefix: str,
                         test_split: str = "held_out") -> list[Candidate]:
    """The candidates of a zipped MVTec AD category under ``prefix``, masks from ``ground_truth``."""
    by_name = {m.filename: m for m in members}
    candidates = []
    for name, member in sorted(by_name.items()):
        parts = PurePosixPath(name[len(prefix):]).parts if name.startswith(prefix) else ()
        if len(parts) != 3 or parts[0] not in ("train", "test") or PurePosixPath(name).suffix.lower() \
                not in IMAGE_SUFFIXES or any(p.startswith(".") for p in parts):
            continue
        if parts[0] == "train" and parts[1] != "good":
            continue
        mask_name = f"{prefix}ground_truth/{parts[1]}/{PurePosixPath(parts[2]).stem}_mask.png"
        mask = by_name.get(mask_name)
        candidates.append(Candidate(
            name[len(prefix):], parts[1].lower(), lambda m=member: read_member(archive, m),
            mask=(lambda m=mask: read_member(archive, m)) if mask is not None and parts[0] == "test" else None,
            split="train" if parts[0] == "train" else test_split))
    return candidates
