"""Model artifacts: tensors in ``weights.safetensors`` and parameters in ``model.json``.

Nothing is ever unpickled. A save writes a temporary folder and renames it into place.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"


class ArtifactError(ValueError):
    """An artifact folder that is missing, incomplete or malformed."""


def save_artifact(folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and ``meta`` to ``folder`` (which must not exist yet), atomically."""
    folder = Path(folder)
    if folder.exists():  # rename() would silently replace an empty folder
        raise FileExistsError(f"{folder} exists already; an artifact is never overwritten")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp / WEIGHTS_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_artifact(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read an artifact folder; raises ArtifactError with the reason when it is unusable."""
    folder = Path(folder)
    weights, meta_file = folder / WEIGHTS_FILE, folder / META_FILE
    if not weights.is_file() or not meta_file.is_file():
        raise ArtifactError(f"model files missing in {folder}")
    try:
        meta = json.loads(meta_file.read_text())
        tensors = load_file(weights)
    except Exception as error:
        raise ArtifactError(f"model files in {folder} are damaged: {error}") from error
    return tensors, meta
