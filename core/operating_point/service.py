"""A tool's operating point: its deciding versions' stored calibration scores paired by sample, the
choice for the engineer's targets, and the one audited way to store, recompute or clear it
(``core.tool_settings.change_settings``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from core.audit import Actor
from core.errors import InvalidInputError, NotFoundError
from core.inspect.models import load_tool_models
from core.operating_point.adapt import WINDOW
from core.operating_point.choose import Choice, Targets, choose
from core.operating_point.point import OperatingPoint
from core.operating_point.training_scores import KEY
from core.studio import Studio
from core.tool_settings import change_settings, tool_settings
from storage import repository as repo
from storage.tables import Inspection


@dataclass(frozen=True)
class Calibration:
    """The deciding versions' out-of-fold scores of the training images both scored (``(N,)`` each)."""

    versions: dict[str, int]
    scores: dict[str, np.ndarray]
    is_defect: np.ndarray
    sample_ids: list[Any]


def calibration(studio: Studio, tool_name: str) -> Calibration:
    """Paired calibration scores of the tool's deciding versions (the engine's ``load_tool_models``).
    NotFoundError when a version stored none (trained before operating points: retrain it)."""
    versions = load_tool_models(studio, tool_name).version_ids
    stored: dict[str, dict] = {}
    with studio.transaction() as session:
        for method, version_id in versions.items():
            version = repo.get_model_version(session, version_id)
            scores = (version.metrics or {}).get(KEY) if version is not None else None
            if not scores:
                raise NotFoundError(f"the {method} model (version {version_id}) of tool {tool_name!r} has no "
                                    "calibration scores: it was trained before operating points; retrain it")
            stored[method] = scores
    tables = {m: {sid: (float(s), bool(d)) for sid, s, d in zip(v["sample_ids"], v["scores"], v["defect"],
                                                                  strict=True)}
              for m, v in stored.items()}
    first = next(iter(tables.values()))
    common = [sid for sid in first if all(sid in t and t[sid][1] == first[sid][1] for t in tables.values())]
    return Calibration(dict(versions), {m: np.array([t[sid][0] for sid in common]) for m, t in tables.items()},
                       np.array([first[sid][1] for sid in common], dtype=bool), common)


def recent_scores(studio: Studio, tool_name: str, versions: dict[str, int], window: int = WINDOW
                  ) -> dict[str, np.ndarray]:
    """Each deciding model's scores ``{method: (M,)}`` of the tool's ``window`` most recent inspections
    that all of ``versions`` scored (no labels needed: the parts as the line sees them)."""
    rows: list[dict[str, float]] = []
    with studio.transaction() as session:
        tool = repo.get_tool(session, tool_name)
        if tool is None:
            raise NotFoundError(f"no tool named {tool_name!r}")
        query = (select(Inspection.opinions).where(Inspection.tool_id == tool.id)
                 .order_by(Inspection.created_at.desc(), Inspection.id.desc()))
        for opinions in session.scalars(query.execution_options(yield_per=500)):
            found = {m: (opinions or {}).get(m) or {} for m in versions}
            if all(o.get("version") == versions[m] and isinstance(o.get("score"), int | float)
                   for m, o in found.items()):
                rows.append({m: float(o["score"]) for m, o in found.items()})
                if len(rows) >= window:
                    break
    return {m: np.array([row[m] for row in rows], dtype=np.float64) for m in versions}


def propose(studio: Studio, tool_name: str, targets: Targets, adapt: int = 0) -> tuple[Choice, Calibration]:
    """What the tool would choose for ``targets`` (nothing stored); ``adapt`` > 0 adapts the point to the
    scores of that many recent inspections (``choose``'s ``new_scores``)."""
    data = calibration(studio, tool_name)
    new = recent_scores(studio, tool_name, data.versions, adapt) if adapt > 0 else None
    try:
        return choose(data.scores, data.is_defect, targets, new_scores=new), data
    except ValueError as error:
        raise InvalidInputError(str(error)) from None


def apply(studio: Studio, tool_name: str, targets: Targets, actor: Actor, adapt: int = 0,
          signature_password: str | None = None) -> tuple[Choice, OperatingPoint]:
    """Choose for ``targets`` (adapted to ``adapt`` recent inspections when > 0) and store the point for
    the deciding versions (audited)."""
    choice, data = propose(studio, tool_name, targets, adapt)
    point = OperatingPoint.from_choice(choice, data.versions)
    change_settings(studio, tool_name, actor, {"operating_point": point}, signature_password)
    return choice, point


def recompute(studio: Studio, tool_name: str, actor: Actor, signature_password: str | None = None
              ) -> tuple[Choice, OperatingPoint]:
    """The stored targets applied again to the deciding versions (after a training or a promote)."""
    stored = tool_settings(studio, tool_name).operating_point
    if stored is None:
        raise InvalidInputError(f"tool {tool_name!r} has no operating point to recompute")
    return apply(studio, tool_name, stored.targets, actor, signature_password=signature_password)


def clear(studio: Studio, tool_name: str, actor: Actor, signature_password: str | None = None) -> None:
    """Remove the operating point: each model decides by its own threshold again (audited)."""
    change_settings(studio, tool_name, actor, {"operating_point": None}, signature_password)


def status(studio: Studio, tool_name: str) -> dict[str, Any]:
    """The stored point, whether it decides for the current versions, and why not."""
    models = load_tool_models(studio, tool_name)
    point = models.settings.operating_point
    return {"point": None if point is None else point.as_json(), "applies": models.operating_point is not None,
            "versions": models.version_ids, "notices": models.notices}


def choice_json(choice: Choice, versions: dict[str, int], applied: bool) -> dict[str, Any]:
    """What the CLI prints: the promised rates, their ranges and rules, the cut points, the weights."""
    return {"applied": applied, "versions": versions, "targets": choice.targets.as_json(), "met": choice.met,
            "problems": list(choice.problems), "rule": choice.rule, "lo": round(choice.lo, 6),
            "hi": round(choice.hi, 6), "combination": choice.combination.as_json(),
            "promised": choice.promised.as_json(), "counts": choice.counts.as_json(),
            "n_good": choice.n_good, "n_defect": choice.n_defect, "sentence": choice.sentence(),
            "adapted": None if choice.adapted is None else choice.adapted.as_json(),
            "adaptation": adaptation(choice)}


def adaptation(choice: Choice) -> str:
    """Which point was asked for and used: ``not asked``, ``used`` or ``refused: <why>`` (the fail safe of
    ``core.operating_point.adapt.cross_check``: the point is then the training images')."""
    if choice.adapted is None:
        return "not asked"
    return "used" if choice.adapted.used else f"refused: {choice.adapted.refused}"
