"""Model artifacts: tensors in ``weights.safetensors`` and parameters in ``model.json``.

Nothing is ever unpickled. A save writes a temporary folder and renames it into place. Every
inspection method's ``model.json`` holds ``"method"`` (its registry name), ``"format"`` (its artifact
layout) and ``"params"`` (its hyper-parameters) beside what it adds; artifacts written before that
scheme (a ``"kind"`` key) are read as the method and format they were (``models.artifact_meta``, torch-free).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from models.artifact_meta import (  # the layout and scheme (torch-free); importable from here too
    META_FILE,
    WEIGHTS_FILE,
    ArtifactError,
    method_and_format,
)
from models.profiles import get_profile


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
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ArtifactError(f"model files in {folder} are damaged: tensor {name!r} holds NaN or infinite values")
    return tensors, meta


def save_method_artifact(folder: Path, tensors: dict[str, torch.Tensor], method: str, format_version: int,
                         params: dict[str, Any], **extra: Any) -> None:
    """``save_artifact`` with the scheme's ``method``, ``format`` and ``params`` in ``model.json``."""
    save_artifact(folder, tensors, {"method": method, "format": format_version, "params": params, **extra})


def load_method_artifact(folder: Path, method: str, format_version: int,
                         noun: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and ``model.json`` of a ``method`` artifact in ``format_version``; ArtifactError, in terms
    of ``noun`` ("anomaly model"), for another method, another format or an unknown profile."""
    tensors, meta = load_artifact(folder)
    try:
        found, found_format = method_and_format(meta)
        if found != method:
            raise ValueError(f"it holds a {found!r} model")
        if found_format != format_version:
            raise ValueError(f"it was saved in an older format ({found_format}, now {format_version}): "
                             f"retrain the {noun}")
        if not isinstance(meta.get("params"), dict):
            raise ValueError("model.json has no parameters")
        get_profile(str(meta["params"].get("profile")))
    except (TypeError, ValueError) as error:
        raise ArtifactError(f"{folder} does not hold a usable {noun}: {error}") from error
    return tensors, meta
