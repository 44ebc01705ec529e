"""An artifact folder's layout and ``model.json`` scheme, without torch: the file names, the error of an
unusable artifact and which method and format a ``model.json`` names.

``models.artifacts`` reads and writes the tensors; services that only catch ``ArtifactError`` or name the
files import them from here without loading a network.
"""

from __future__ import annotations

from typing import Any

WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"


class ArtifactError(ValueError):
    """An artifact folder that is missing, incomplete or malformed."""


# Artifacts from before the one scheme: (kind, method) -> format. The classifier stored a method name
# per layout (only the last one is still readable, as format 1); the anomaly model its own "format".
LEGACY_CLASSIFIER_FORMATS = {"few-shot-discriminant": 1}


def method_and_format(meta: dict[str, Any]) -> tuple[str, int]:
    """The method name and artifact format of a ``model.json``, legacy ones included (format 0: a
    layout no method reads any more)."""
    if "kind" in meta:  # before the one scheme
        kind = str(meta["kind"])
        if kind == "classifier":
            return kind, LEGACY_CLASSIFIER_FORMATS.get(str(meta.get("method")), 0)
        return kind, int(meta.get("format", 1))
    return str(meta.get("method")), int(meta.get("format", 0))
