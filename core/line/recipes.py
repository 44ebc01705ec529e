"""Recipes: one product on a station, a named set of tools with overrides and a number for the PLC.

A recipe's ``tools`` is a list of ``{"tool": NAME, "roi": [x0, y0, x1, y1]?, "threshold": float or
{method: float}?, "policy": str?}``. Activating one is audited (who, from where: studio, CLI, MQTT, PLC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core import audit
from core.auth.guard import require
from core.auth.roles import Permission
from core.errors import InvalidInputError, NotFoundError
from core.fleet import rollout
from core.line.outbox import ensure_station
from core.roi import validate_roi
from core.studio import Studio
from core.tool_settings import policies
from core.tools import require_tool
from storage.line_tables import LineStation, Recipe

MAX_NUMBER = 65535  # a Modbus register


@dataclass(frozen=True)
class RecipeInfo:
    id: int
    station: str
    name: str
    number: int
    tools: list[dict[str, Any]]
    active: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "station": self.station,
            "name": self.name,
            "number": self.number,
            "tools": self.tools,
            "active": self.active,
        }

    @property
    def tool_names(self) -> list[str]:
        return [entry["tool"] for entry in self.tools]


def _info(row: Recipe, active_id: int | None) -> RecipeInfo:
    return RecipeInfo(row.id, row.station, row.name, row.number, list(row.tools), row.id == active_id)


def _threshold(value: Any) -> float | dict[str, float]:
    """One threshold for every deciding model, or one per method; each in [0, 1]."""
    values = value if isinstance(value, dict) else {"": value}
    try:
        clean = {str(k): float(v) for k, v in values.items()}
    except (TypeError, ValueError):
        raise InvalidInputError("a recipe threshold is a number or {method: number}") from None
    if not all(0.0 <= v <= 1.0 for v in clean.values()):
        raise InvalidInputError("a recipe threshold is between 0 and 1")
    return clean[""] if not isinstance(value, dict) else clean


def parse_tool_entries(session: Any, tools: list[str | dict[str, Any]]) -> list[dict[str, Any]]:
    """Check every tool exists and every override is valid."""
    entries: list[dict[str, Any]] = []
    for item in tools:
        entry = {"tool": item} if isinstance(item, str) else dict(item)
        require_tool(session, str(entry.get("tool", "")))
        clean: dict[str, Any] = {"tool": entry["tool"]}
        if entry.get("roi") is not None:
            clean["roi"] = validate_roi(entry["roi"])
        if entry.get("threshold") is not None:
            clean["threshold"] = _threshold(entry["threshold"])
        if entry.get("policy") is not None:
            if str(entry["policy"]) not in policies():
                raise InvalidInputError(f"unknown policy {entry['policy']!r}; choose one of {', '.join(policies())}")
            clean["policy"] = str(entry["policy"])
        entries.append(clean)
    if not entries:
        raise InvalidInputError("a recipe needs at least one tool")
    return entries


def create_recipe(
    studio: Studio,
    station: str,
    name: str,
    number: int,
    tools: list[str | dict[str, Any]],
    actor: audit.Actor,
) -> RecipeInfo:
    require(studio, actor, Permission.EDIT_RECIPES, f"station {station}")
    if not 1 <= number <= MAX_NUMBER:
        raise InvalidInputError(f"a recipe number is between 1 and {MAX_NUMBER} (0 means 'no change' to a PLC)")
    with studio.transaction() as session:
        entries = parse_tool_entries(session, tools)
        if session.scalar(select(Recipe).where(Recipe.station == station, Recipe.name == name)):
            raise InvalidInputError(f"station {station!r} already has a recipe named {name!r}")
        if session.scalar(select(Recipe).where(Recipe.station == station, Recipe.number == number)):
            raise InvalidInputError(f"station {station!r} already has a recipe number {number}")
        row = Recipe(station=station, name=name, number=number, tools=entries)
        session.add(row)
        session.flush()
        ensure_station(session, station)
        audit.log(session, actor, "recipe_create", f"recipe {row.id}", None, station=station, name=name, number=number)
        return _info(row, None)


def list_recipes(studio: Studio, station: str) -> list[RecipeInfo]:
    with studio.transaction() as session:
        active = session.scalar(select(LineStation.active_recipe_id).where(LineStation.name == station))
        return [
            _info(r, active)
            for r in session.scalars(select(Recipe).where(Recipe.station == station).order_by(Recipe.number))
        ]


def find_recipe(studio: Studio, station: str, key: str | int) -> RecipeInfo:
    """A recipe by name or number (``"3"`` is tried as a name first, then as a number)."""
    with studio.transaction() as session:
        query = select(Recipe).where(Recipe.station == station)
        row = session.scalar(query.where(Recipe.name == str(key)))
        if row is None and str(key).strip().isdigit():
            row = session.scalar(query.where(Recipe.number == int(key)))
        if row is None:
            raise NotFoundError(f"station {station!r} has no recipe {key!r}")
        active = session.scalar(select(LineStation.active_recipe_id).where(LineStation.name == station))
        return _info(row, active)


def activate_recipe(
    studio: Studio, station: str, key: str | int, actor: audit.Actor, via: str = "cli"
) -> RecipeInfo:
    """Make a recipe the station's active one (the running service follows); audited."""
    require(studio, actor, Permission.SWITCH_RECIPE, f"station {station}")
    recipe = find_recipe(studio, station, key)
    with studio.transaction() as session:
        row = ensure_station(session, station)
        previous = row.active_recipe_id
        row.active_recipe_id = recipe.id
        audit.log(
            session,
            actor,
            "recipe_activate",
            f"recipe {recipe.id}",
            None,
            station=station,
            name=recipe.name,
            number=recipe.number,
            previous=previous,
            via=via,
        )
        rollout.announce_recipe(session, station)  # the running station follows once this commits
    return RecipeInfo(recipe.id, station, recipe.name, recipe.number, recipe.tools, True)


def active_recipe(studio: Studio, station: str) -> RecipeInfo | None:
    with studio.transaction() as session:
        active = session.scalar(select(LineStation.active_recipe_id).where(LineStation.name == station))
        row = session.get(Recipe, active) if active else None
        return _info(row, active) if row else None
