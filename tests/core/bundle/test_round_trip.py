"""A tool exported from one studio and imported into a fresh one decides the same, with no training:
identical decisions, scores within 1e-6 (every committed ELPV cell), settings, ROI, recipes, dataset;
from SQLite to PostgreSQL too."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.audit import SYSTEM, Actor, audit_log
from core.auth.roles import Role
from core.bundle.export import export_bundle
from core.bundle.import_ import import_bundle
from core.errors import NotFoundError
from core.inspect.engine import Inspection
from core.inspect.models import load_tool_models
from core.inspect.service import predict_image
from core.line.recipes import list_recipes
from core.model_versions import list_versions
from core.samples import class_counts
from core.studio import Studio
from core.tool_settings import tool_settings
from core.tools import get_tool
from tests.core.bundle.conftest import ELPV, TOOL, open_at

CELLS = sorted(ELPV.glob("*/*.png"))
ME = Actor("ines", "pc-7", Role.ENGINEER)


def inspect_all(studio: Studio, tool: str, paths: list[Path], roi: str = "auto") -> list[Inspection]:
    return [predict_image(studio, tool, p.name, p.read_bytes(), record=False, roi=roi,
        actor=SYSTEM).inspection for p in paths]


def assert_same(expected: list[Inspection], got: list[Inspection]) -> None:
    for a, b in zip(expected, got, strict=True):
        assert (a.decision, a.verdict.label, a.degraded) == (b.decision, b.verdict.label, b.degraded)
        assert abs(a.verdict.score - b.verdict.score) <= 1e-6
        assert a.models.keys() == b.models.keys() == {"classifier", "anomaly"}
        for method, verdict in a.models.items():
            other = b.models[method]
            assert verdict.verdict is not None and other.verdict is not None
            assert (verdict.threshold, verdict.review_band) == (other.threshold, other.review_band)
            assert verdict.verdict.decision == other.verdict.decision
            assert abs(verdict.verdict.score - other.verdict.score) <= 1e-6
        if a.map is not None:
            assert b.map is not None and float(np.abs(a.map - b.map).max()) <= 1e-6


def assert_same_settings(source: Studio, tool: str, station: Studio, copy: str, active: dict[str, int]) -> None:
    """The same settings, the operating point naming the imported versions (their ids here)."""
    mine, theirs = tool_settings(source, tool), tool_settings(station, copy)
    assert theirs.operating_point is not None and dict(theirs.operating_point.versions) == active
    assert replace(theirs, operating_point=replace(theirs.operating_point, versions=mine.operating_point.versions)) \
        == mine


def test_a_fresh_studio_decides_exactly_as_the_source(source: Studio, station: Studio,
                                                      bundles: dict[str, Path]) -> None:
    result = import_bundle(station, bundles["images"], ME)

    assert result.tool == TOOL and result.samples == 40 and result.signature == "not signed"
    assert set(result.active) == {"classifier", "anomaly"}
    assert_same(inspect_all(source, TOOL, CELLS), inspect_all(station, TOOL, CELLS))
    assert_same(inspect_all(source, TOOL, CELLS[:1], roi="crop"), inspect_all(station, TOOL, CELLS[:1], roi="crop"))

    mine, theirs = get_tool(source, TOOL), get_tool(station, TOOL)
    assert (theirs.classes, theirs.roi) == (mine.classes, mine.roi)
    assert_same_settings(source, TOOL, station, TOOL, result.active)
    assert inspect_all(station, TOOL, CELLS[:1])[0].combined_score is not None  # the operating point decides
    assert class_counts(station, TOOL) == class_counts(source, TOOL) == {"good": 20, "defective": 20}
    before = {(v.method, v.profile, v.status, v.n_samples) for v in list_versions(source, TOOL) if v.status == "active"}
    assert {(v.method, v.profile, v.status, v.n_samples) for v in list_versions(station, TOOL)} == before
    [recipe] = list_recipes(station, "line-1")
    assert (recipe.name, recipe.number, recipe.tools) == ("cells", 7, [{"tool": TOOL, "threshold": 0.5}])
    [entry] = [e for e in audit_log(station, TOOL) if e.action == "bundle_import"]
    assert (entry.actor, entry.device, entry.details["signature"]) == ("ines", "pc-7", "not signed")


def test_sqlite_to_postgresql_under_a_new_name(source: Studio, bundles: dict[str, Path], postgres,
                                             tmp_path: Path) -> None:
    station = open_at(tmp_path / "pg-station", postgres.create_database("bundle_station"))
    try:
        result = import_bundle(station, bundles["plain"], ME, as_name="cell-copy")
        assert set(result.active) == {"classifier", "anomaly"} and result.samples is None
        assert_same(inspect_all(source, TOOL, CELLS[::8]), inspect_all(station, "cell-copy", CELLS[::8]))
        assert_same_settings(source, TOOL, station, "cell-copy", result.active)
        [recipe] = list_recipes(station, "line-1")
        assert recipe.tools == [{"tool": "cell-copy", "threshold": 0.5}]
    finally:
        station.engine.dispose()


def test_candidate_import_decides_nothing_until_a_promotion(station: Studio, bundles: dict[str, Path]) -> None:
    result = import_bundle(station, bundles["plain"], ME, activation="candidate")
    assert result.active == {} and {v.status for v in list_versions(station, TOOL)} == {"candidate"}
    with pytest.raises(NotFoundError, match="no trained model"):
        load_tool_models(station, TOOL)


def test_a_chosen_candidate_is_activated_with_activate(source: Studio, station: Studio, tmp_path: Path) -> None:
    knn = next(v for v in list_versions(source, TOOL) if v.method == "knn")
    path = export_bundle(source, TOOL, tmp_path / "knn.zip", version_ids=[knn.id], actor=SYSTEM).path
    result = import_bundle(station, path, ME, activation="activate", recipes=False)
    assert list(result.active) == ["knn"] and list_recipes(station, "line-1") == []
    assert [set(i.models) for i in inspect_all(station, TOOL, CELLS[:2])] == [{"knn"}] * 2


def test_runtime_graphs_cached_beside_a_model_are_not_exported(source: Studio, tmp_path: Path) -> None:
    # what STUDIO_RUNTIME=onnx caches on first use, beside every model of the source
    graphs = [meta.parent / "runtime-1.onnx" for meta in source.settings.models_dir.rglob("model.json")]
    for graph in graphs:
        graph.write_bytes(b"a graph")
    try:
        path = export_bundle(source, TOOL, tmp_path / "b.zip", actor=SYSTEM).path
    finally:
        for graph in graphs:
            graph.unlink()
    with zipfile.ZipFile(path) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".onnx")]
