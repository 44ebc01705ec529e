"""A tool's models as the engine needs them: its active version of each method, loaded once per
process, with the decision threshold and band each decides with, and the tool's settings and ROI."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.config import inference_runtime
from core.errors import NotFoundError, StudioError
from core.model_artifacts import ArtifactUnavailableError, fetch_artifact
from core.operating_point.point import OperatingPoint
from core.studio import Studio
from core.tool_settings import ToolSettings, policy_methods
from core.tools import require_tool
from models.artifact_meta import ArtifactError
from models.registration import PartLocator
from models.registry import load_model, method_names
from storage import repository as repo
from storage import versions as versions_repo

MODEL_CACHE_SIZE = 8
log = logging.getLogger(__name__)


def load_for_inference(folder: Path) -> Any:
    """The model in artifact ``folder`` as the engine runs it: the estimator itself, or with
    ``STUDIO_RUNTIME=onnx`` the estimator judged through onnxruntime (its graph exported next to the
    artifact on first use). A model whose graph cannot be exported or opened is judged by PyTorch (the
    same scores within 1e-4), and the reason is logged."""
    model = load_model(folder)
    if inference_runtime() != "onnx":
        return model
    from models.onnx_export import exportable  # onnx and onnxruntime load only when used
    from models.onnx_runtime import load_onnx

    if not exportable(model):
        return model
    try:
        return load_onnx(model, folder)
    except Exception as error:  # noqa: BLE001 - any failure of the graph falls back to the estimator itself
        log.warning("the model in %s runs on PyTorch: its ONNX graph failed (%s)", folder, error)
        return model


class ModelCache:
    """Loaded models keyed by artifact folder, least recently used dropped first (thread-safe)."""

    def __init__(self, size: int = MODEL_CACHE_SIZE) -> None:
        self.size = size
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: Path, loader: Callable[[Path], Any] = load_for_inference) -> Any:
        key = str(folder)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = loader(folder)
        with self._lock:
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model


CACHE = ModelCache()
LOCATORS = ModelCache()  # the versions' part references (position correction), by artifact folder


@dataclass(frozen=True)
class LoadedModel:
    """One model version that decides, with the threshold and review band it decides with."""

    method: str
    version_id: int
    model: Any  # a models.base.InspectionMethod
    threshold: float
    review_band: float
    locator: PartLocator | None = None  # the version's part reference (trained with position correction)

    @property
    def names_classes(self) -> bool:
        return self.model.learns_from != "good"


@dataclass(frozen=True)
class ToolModels:
    """What judging a part of a tool needs. ``models`` are the deciding ones in registry order;
    ``errors`` say why a model the policy wants is missing (then ``degraded``: the others decide)."""

    tool: str
    tool_id: int
    good_class: str
    classes: tuple[str, ...]
    roi: tuple[float, ...] | None
    settings: ToolSettings
    models: tuple[LoadedModel, ...]
    errors: dict[str, str]
    degraded: bool

    @property
    def version_ids(self) -> dict[str, int]:
        return {m.method: m.version_id for m in self.models}

    @property
    def locator(self) -> PartLocator | None:
        """Where the tool's part lies in its region (the first deciding version trained with position
        correction; None: the region is judged where it is drawn)."""
        return next((m.locator for m in self.models if m.locator is not None), None)

    @property
    def operating_point(self) -> OperatingPoint | None:
        """The tool's operating point when it was computed for exactly the deciding versions (and no
        model is missing), else None: the models decide by their own thresholds and the policy."""
        point = self.settings.operating_point
        if point is None or self.errors or not point.applies_to(self.version_ids):
            return None
        return point

    @property
    def notices(self) -> list[str]:
        """What the user should know about how the tool decides (a stored point that does not apply)."""
        point = self.settings.operating_point
        if point is None or self.operating_point is not None:
            return []
        return [f"the operating point was computed for model versions {dict(point.versions)}, the deciding ones "
                f"are {self.version_ids}{' (degraded)' if self.errors else ''}: each model decides by its own "
                "threshold until the operating point is recomputed (python -m core operating-point --recompute)"]

    def with_thresholds(self, thresholds: dict[str, float], bands: dict[str, float]) -> ToolModels:
        """The same models deciding with other thresholds / bands (the Live page's unsaved settings); a
        threshold or band that differs from the current one sets the operating point aside."""
        models = tuple(replace(m, threshold=float(thresholds.get(m.method, m.threshold)),
                               review_band=float(bands.get(m.method, m.review_band))) for m in self.models)
        changed = models != self.models
        settings = replace(self.settings, operating_point=None) if changed else self.settings
        return replace(self, models=models, settings=settings)


def _loaded(method: str, version_id: int, folder: Path, settings: ToolSettings) -> LoadedModel:
    model = CACHE.get(folder)
    return LoadedModel(method, version_id, model, float(settings.thresholds.get(method, model.threshold_)),
                       float(settings.review_bands.get(method, model.review_band_)),
                       LOCATORS.get(folder, PartLocator.load))


def _load_all(methods: list[str], folders: dict[str, tuple[int, Path]], settings: ToolSettings,
              tool_name: str, unfetched: dict[str, str]) -> tuple[list[LoadedModel], dict[str, str]]:
    models, errors = [], {}
    for method in methods:
        if method in unfetched:
            errors[method] = (f"the {method} model of tool {tool_name!r} cannot be loaded: {unfetched[method]}. "
                              "Retrain it, or wait for the object store if it is unreachable.")
            continue
        try:
            models.append(_loaded(method, *folders[method], settings))
        except ArtifactError as error:
            errors[method] = f"the {method} model of tool {tool_name!r} cannot be loaded: {error}. Retrain it."
    return models, errors


def _local_folders(studio: Studio, rows: dict[str, Any]) -> tuple[dict[str, tuple[int, Path]], dict[str, str]]:
    """Each version's folder, fetched from the object store and checked against its manifest when needed;
    and, per method, why a version could not be fetched (reported like any model that does not load)."""
    folders, unfetched = {}, {}
    for method, version in rows.items():
        try:
            folders[method] = (version.id, fetch_artifact(studio, version))
        except ArtifactUnavailableError as error:
            log.warning("%s", error)
            folders[method] = (version.id, studio.settings.models_dir / version.artifact_dir)
            unfetched[method] = str(error)
    return folders, unfetched


def load_tool_models(studio: Studio, tool_name: str, version_id: int | None = None) -> ToolModels:
    """The tool's active models under its policy (or, with ``version_id``, that version alone).

    A model that fails to load is left out with the reason in ``errors`` (degraded); raises NotFoundError
    when the tool has no trained model and StudioError when none of its models can be used.
    """
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        settings = ToolSettings.from_json(tool.settings)
        if version_id is not None:
            version = repo.get_model_version(session, version_id)
            if version is None or version.tool_id != tool.id:
                raise NotFoundError(f"tool {tool_name!r} has no model version {version_id}")
            chosen = {version.method: version}
        else:
            chosen = versions_repo.active_versions(session, tool.id)
        rows = dict(chosen)
        identity = (tool.id, tool.good_class, tuple(tool.class_names), tuple(tool.roi) if tool.roi else None)
    if not rows:
        raise NotFoundError(f"tool {tool_name!r} has no trained model yet: train one first")
    folders, unfetched = _local_folders(studio, rows)
    wanted = policy_methods(settings.policy) if version_id is None else None
    order = [m for m in method_names() if m in folders and (wanted is None or m in wanted)]
    models, errors = _load_all(order, folders, settings, tool_name, unfetched)
    if not models:  # the policy's model is not trained or does not load: the others decide (degraded)
        others, more = _load_all([m for m in method_names() if m in folders and m not in order], folders, settings,
                                 tool_name, unfetched)
        models, errors = others, {**errors, **more}
    if not models:
        raise StudioError(" ".join(errors.values()) or f"tool {tool_name!r} has no usable model")
    missing = sorted(set(wanted or ()) - set(folders))
    for method in missing:
        errors[method] = f"tool {tool_name!r} has no trained {method} model"
    if version_id is not None:
        degraded = False
    elif wanted is None:  # cross-check: degraded when no second model checks the first
        degraded = bool(errors) or len(models) < 2
    else:
        degraded = not wanted <= {m.method for m in models}
    return ToolModels(tool_name, identity[0], identity[1], identity[2], identity[3], settings, tuple(models), errors,
                      degraded)


def describe_tool(studio: Studio, tool_name: str) -> dict[str, Any]:
    """What ``tools show`` and ``GET /v1/tools/{name}`` print: the tool, its typed settings and the models
    that decide with their thresholds (or why none can)."""
    from core.tools import get_tool

    info = get_tool(studio, tool_name).as_dict()
    info["settings"] = ToolSettings.from_json(info["settings"]).to_json()
    try:
        loaded = load_tool_models(studio, tool_name)
    except StudioError as error:
        info["deciding"] = {"error": str(error)}
    else:
        info["deciding"] = {m.method: {"version": m.version_id, "threshold": m.threshold,
                                       "review_band": m.review_band} for m in loaded.models}
        info["degraded"] = loaded.degraded
    return info
