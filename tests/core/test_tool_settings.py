"""Typed tool settings: one table of defaults, validation with clear messages, flat names for the CLI,
every change audited, and the migration of the settings stored before them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from core.audit import SYSTEM, Actor, audit_log
from core.auth.roles import Role
from core.errors import InvalidInputError
from core.studio import Studio
from core.tool_settings import LiveOptions, ToolSettings, change_settings, policies, tool_settings
from core.tools import create_tool

ROOT = Path(__file__).resolve().parents[2]
BOB = Actor("bob", "line-pc", Role.ENGINEER)


def test_defaults_and_round_trip() -> None:
    settings = ToolSettings()
    assert settings.policy == "cross-check" and dict(settings.thresholds) == {} and settings.audit_share == 0.0
    assert settings.live == LiveOptions() and settings.roi_frame == (640, 480)
    assert ToolSettings.from_json(settings.to_json()) == settings
    assert ToolSettings.from_json(None) == ToolSettings.from_json({}) == settings
    assert "classifier only" in policies() and "anomaly only" in policies()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("policy", "majority", "unknown policy 'majority'"),
    ("threshold.classifier", 1.5, "between 0 and 1"),
    ("threshold.segmenter", 0.5, "unknown model method 'segmenter'"),
    ("review_band.anomaly", 0.7, "at most 0.5"),
    ("audit_share", "lots", "must be a number"),
    ("live.smoothing", 0, "smoothing is 1 to 30"),
    ("live.trigger", "sometimes", "trigger must be one of"),
    ("live.tta", "maybe", "not true or false"),
    ("shifts", "day 6-6", "start differ"),
    ("roi_frame", "wide", "width and a height"),
    ("colour", "red", "unknown tool setting 'colour'"),
])
def test_bad_values_are_refused_with_a_clear_message(name: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ToolSettings().with_change(name, value)


def test_unknown_stored_keys_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown tool settings: speed"):
        ToolSettings.from_json({"speed": 3})


def test_changes_are_validated_together_audited_and_calibrated_restores(any_studio: Studio) -> None:
    create_tool(any_studio, "cell", "good,crack", actor=SYSTEM)
    with pytest.raises(InvalidInputError):
        change_settings(any_studio, "cell", BOB, {"threshold.classifier": "0.4", "policy": "nope"})
    assert tool_settings(any_studio, "cell") == ToolSettings()  # nothing applied, not even the threshold
    after = change_settings(any_studio, "cell", BOB, {"threshold.classifier": "0.4", "live.tta": "on",
                                                      "shifts": "day 6-18, night 18-6", "roi_frame": "1280x720"})
    assert dict(after.thresholds) == {"classifier": 0.4} and after.live.tta and after.roi_frame == (1280, 720)
    assert [s.name for s in after.shift_list] == ["day", "night"]
    assert tool_settings(any_studio, "cell") == after
    change_settings(any_studio, "cell", BOB, {"threshold.classifier": None})
    assert dict(tool_settings(any_studio, "cell").thresholds) == {}
    entries = audit_log(any_studio, "cell")
    assert [(e.action, e.actor) for e in entries] == [("settings", "bob"), ("settings", "bob")]
    assert entries[1].details["changes"]["thresholds"] == {"from": {}, "to": {"classifier": 0.4}}
    change_settings(any_studio, "cell", BOB, {"audit_share": 0.0})  # no change: no entry
    assert len(audit_log(any_studio, "cell")) == 2


def _migration():
    path = ROOT / "storage" / "migrations" / "versions" / "0010_model_methods_settings_station.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_turns_old_settings_into_typed_ones() -> None:
    old = {"threshold": 0.42, "review_band": 0.05, "policy": "anomaly only", "anomaly_threshold": 0.6,
           "audit_share": 0.1, "holdout_share": 0.3, "shifts": [{"name": "day", "start": 6, "end": 18}],
           "live": {"threshold": 0.42, "review_band": 0.05, "smoothing": 3, "tta": True, "keep_pass_share": 0.2,
                    "trigger": "manual", "heatmap": False, "heatmap_opacity": 0.3}}
    migration = _migration()
    typed = ToolSettings.from_json(migration.typed_settings(old))
    assert typed.policy == "anomaly only" and dict(typed.thresholds) == {"classifier": 0.42, "anomaly": 0.6}
    assert dict(typed.review_bands) == {"classifier": 0.05} and typed.keep_pass_share == 0.2
    assert typed.live == LiveOptions(3, True, False, 0.3, "manual") and typed.audit_share == 0.1
    assert ToolSettings.from_json(migration.typed_settings({})) == ToolSettings()
    back = migration.bag_settings(typed.to_json())
    assert back["threshold"] == 0.42 and back["anomaly_threshold"] == 0.6 and back["live"]["smoothing"] == 3


def test_tiling_settings_are_validated_and_give_the_grid_and_cost() -> None:
    from core.tool_settings import TilingOptions

    settings = ToolSettings()
    assert settings.tiling == TilingOptions() and settings.tiling.grid(1820, 3036, 240) is None
    tiled = settings.with_change("tiling.mode", "auto").with_change("tiling.defect_px", "75")
    assert tiled.tiling.grid(1820, 3036, 240) == (600, 75)
    assert ToolSettings.from_json(tiled.to_json()) == tiled
    cost = tiled.tiling.cost(1820, 3036, 240, "anomaly")
    assert cost is not None and cost.tiles == 24 and cost.mb > 0 and cost.ms > 0
    fixed = tiled.with_change("tiling.mode", "fixed").with_change("tiling.overlap", 0).with_change("tiling.tile_px", 64)
    with pytest.raises(InvalidInputError, match="more than"):
        fixed.tiling.grid(1820, 3036, 240)
    for name, value in (("tiling.mode", "sometimes"), ("tiling.tile_px", 10), ("tiling.overlap", 400),
                        ("tiling.defect_px", 0), ("tiling.tile_px", "big"), ("tiling.size", 3)):
        with pytest.raises(InvalidInputError):
            settings.with_change(name, value)
    with pytest.raises(InvalidInputError):
        ToolSettings.from_json({"tiling": {"tile": 3}})


def test_robustness_settings_default_validate_and_round_trip() -> None:
    settings = ToolSettings()
    assert settings.robustness.augment is False and settings.robustness.tta == ()
    assert settings.robustness.position is False
    changed = settings.with_change("robustness.tta", "light, mirror").with_change("robustness.augment", "on")
    assert changed.robustness.tta == ("mirror", "light") and changed.robustness.augment is True
    assert ToolSettings.from_json(changed.to_json()) == changed
    assert changed.to_json()["robustness"] == {"augment": True, "tta": ["mirror", "light"], "position": False}
    moved = changed.with_change("robustness.position", "on")
    assert moved.robustness.position is True and ToolSettings.from_json(moved.to_json()) == moved
    assert ToolSettings.from_json({"robustness": {"augment": True}}).robustness.position is False  # stored before
    assert changed.with_change("robustness.tta", "none").robustness.tta == ()
    with pytest.raises(InvalidInputError, match="unknown test-time variants blur"):
        settings.with_change("robustness.tta", "blur")
    with pytest.raises(InvalidInputError, match="robustness settings are augment, tta, position"):
        ToolSettings.from_json({"robustness": {"strength": 2}})
