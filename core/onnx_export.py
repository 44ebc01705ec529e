"""Each active model of a tool as an ONNX graph (``models/onnx_export.py``) with a JSON sidecar of what the
engine decides with (``python -m core models export-onnx --tool NAME [--out DIR]``).

The models, thresholds and review bands come from the engine's own loading (``load_tool_models`` with
each active version), so the sidecar says exactly what ``predict`` would decide by: below
``threshold - review_band`` pass, above ``threshold + review_band`` fail, between to a person.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from core.errors import InvalidInputError, NotFoundError
from core.inspect.models import LoadedModel, load_tool_models
from core.studio import Studio
from core.tools import get_tool
from models.onnx_export import EXPORT_FORMAT, ExportError, export_onnx, exportable, input_spec

DECISION_RULE = ("score < threshold - review_band: pass; score > threshold + review_band: fail; "
                 "otherwise review (a person decides)")


def _sidecar(tool: Any, loaded: LoadedModel, graph: Path, settings: Any) -> dict[str, Any]:
    import onnx

    model = getattr(loaded.model, "estimator", loaded.model)  # the estimator behind an onnxruntime wrapper
    return {"tool": tool.name, "method": loaded.method, "version": loaded.version_id, "profile": model.profile,
            "file": graph.name, "input": input_spec(model), "outputs": list(model.export_outputs),
            "threshold": loaded.threshold, "review_band": loaded.review_band, "decision_rule": DECISION_RULE,
            "classes": list(getattr(model, "classes_", [])) or list(tool.classes), "good_class": tool.good_class,
            "names_classes": loaded.names_classes, "roi": tool.roi, "roi_frame": list(settings.roi_frame),
            "policy": settings.policy, "export_format": EXPORT_FORMAT,
            "producer": {"torch": torch.__version__, "onnx": onnx.__version__}}


def export_tool(studio: Studio, tool_name: str, out: Path) -> list[dict[str, Any]]:
    """Write ``<tool>-<method>-v<version>.onnx`` and ``.json`` for each active model of the tool into
    ``out``; returns the sidecars. NotFoundError when the tool has no trained model."""
    tool = get_tool(studio, tool_name)
    if not tool.active_versions:
        raise NotFoundError(f"tool {tool_name!r} has no trained model yet: train one first")
    out.mkdir(parents=True, exist_ok=True)
    sidecars = []
    for method, version_id in tool.active_versions.items():
        loaded_tool = load_tool_models(studio, tool_name, version_id=version_id)
        loaded = loaded_tool.models[0]
        model = getattr(loaded.model, "estimator", loaded.model)
        if not exportable(model):
            raise InvalidInputError(f"the {method} method has no ONNX export")
        stem = f"{tool.name}-{method}-v{version_id}"
        try:
            graph = export_onnx(model, out / f"{stem}.onnx")
        except ExportError as error:
            raise InvalidInputError(str(error)) from error
        sidecar = _sidecar(tool, loaded, graph, loaded_tool.settings)
        (out / f"{stem}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
        sidecars.append(sidecar)
    return sidecars
