"""``tool.json``: what a bundle says about its tool: classes, good class, typed settings, ROI, its model
versions (method, profile, status, metrics with calibration and reference scores; the artifact files are
in ``models/<key>/``) and the recipes it belongs to. ``parse`` validates every field as the studio's own
writers would."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core.bundle.manifest import BundleError
from core.errors import InvalidInputError
from core.roi import validate_roi
from core.tool_settings import ToolSettings
from core.tools import GOOD_CLASS, NAME_PATTERN, parse_classes
from models.profiles import PROFILES
from models.registry import method_names
from storage.tables import MODEL_STATUSES

TOOL_FILE = "tool.json"
DATASET_FILE = "dataset.zip"
MODELS_FOLDER = "models"
MAX_RECIPE_NUMBER = 65535


@dataclass(frozen=True)
class VersionEntry:
    """One model version; its artifact files are ``models/<key>/...`` in the bundle."""

    key: str
    method: str
    profile: str
    status: str
    metrics: dict[str, Any]
    train_seconds: float
    n_samples: int
    created_at: str

    @property
    def folder(self) -> str:
        return f"{MODELS_FOLDER}/{self.key}"


@dataclass(frozen=True)
class RecipeMembership:
    """The tool's entry (with its overrides) in recipe ``name`` (number ``number``) of ``station``."""

    station: str
    name: str
    number: int
    entry: dict[str, Any]


@dataclass(frozen=True)
class ToolDocument:
    name: str
    classes: list[str]
    good_class: str
    roi: list[float] | None
    settings: dict[str, Any]
    versions: list[VersionEntry]
    recipes: list[RecipeMembership] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> ToolDocument:
        """The document in ``data``; BundleError naming the first field that is wrong."""
        try:
            raw = json.loads(data.decode("utf-8"))
            if not isinstance(raw, dict):
                raise BundleError("it is not an object")
            name = str(raw["name"])
            if not NAME_PATTERN.match(name):
                raise BundleError(f"tool name {name!r} is not valid")
            if raw.get("good_class") != GOOD_CLASS:
                raise BundleError(f"the good class must be {GOOD_CLASS!r}")
            classes = parse_classes(_list(raw["classes"]))
            roi = None if raw.get("roi") is None else validate_roi([float(v) for v in _list(raw["roi"])])
            settings = ToolSettings.from_json(_dict(raw.get("settings"))).to_json()
            versions = [_version(v) for v in _list(raw["versions"])]
            recipes = [_recipe(r, name) for r in _list(raw.get("recipes") or [])]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError,
                InvalidInputError) as error:
            detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
            raise BundleError(f"{TOOL_FILE} is malformed ({detail}); refused") from None
        keys = [v.key for v in versions]
        if len(set(keys)) != len(keys):
            raise BundleError(f"{TOOL_FILE} lists a model version twice; refused")
        active = [v.method for v in versions if v.status == "active"]
        if len(set(active)) != len(active):
            raise BundleError(f"{TOOL_FILE} has two active versions of one method; refused")
        return cls(name, classes, GOOD_CLASS, roi, settings, versions, recipes)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{value!r} is not a list")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{value!r} is not an object")
    return value


def _version(raw: Any) -> VersionEntry:
    raw = _dict(raw)
    key = str(raw["key"])
    if not key.isdigit() or len(key) > 12:
        raise ValueError(f"model version key {key!r} is not a number")
    if raw["method"] not in method_names():
        raise ValueError(f"model method {raw['method']!r} is unknown to this studio ({', '.join(method_names())})")
    if raw["profile"] not in PROFILES:
        raise ValueError(f"profile {raw['profile']!r} is unknown to this studio")
    if raw["status"] not in MODEL_STATUSES:
        raise ValueError(f"status {raw['status']!r} is not one of {', '.join(MODEL_STATUSES)}")
    datetime.fromisoformat(str(raw["created_at"]))
    seconds, n_samples = float(raw["train_seconds"]), int(raw["n_samples"])
    if not math.isfinite(seconds) or seconds < 0 or n_samples < 0:
        raise ValueError(f"model version {key}: training seconds and sample count must be non-negative numbers")
    return VersionEntry(key, raw["method"], raw["profile"], raw["status"], _dict(raw["metrics"]), seconds, n_samples,
                        str(raw["created_at"]))


def _recipe(raw: Any, tool: str) -> RecipeMembership:
    raw = _dict(raw)
    station, name, number, entry = str(raw["station"]), str(raw["name"]), int(raw["number"]), _dict(raw["entry"])
    if not (0 < len(station) <= 100 and 0 < len(name) <= 100 and 1 <= number <= MAX_RECIPE_NUMBER):
        raise ValueError(f"recipe {name!r} of station {station!r} is not valid")
    if entry.get("tool") != tool:
        raise ValueError(f"recipe {name!r} holds an entry of another tool")
    return RecipeMembership(station, name, number, entry)
