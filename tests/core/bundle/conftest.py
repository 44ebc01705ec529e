"""A source studio with tool ``solar-cell`` built once per package: the 40 committed ELPV cells, a trained
classifier, a kNN candidate, the committed PatchCore artifact (tests/data/legacy_models) as its anomaly
model, a ROI, changed settings, an operating point and a recipe; and the bundles exported from it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from core.audit import SYSTEM
from core.bundle.export import export_bundle
from core.bundle.signing import KeyPair, generate_key_pair
from core.config import Settings
from core.inspect.models import load_tool_models
from core.line.recipes import create_recipe
from core.operating_point.choose import Targets
from core.operating_point.combine import Combination
from core.operating_point.point import OperatingPoint
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import create_tool, require_tool, set_roi
from core.training import train
from storage import repository as repo
from storage import versions as versions_repo

DATA = Path(__file__).resolve().parents[2] / "data"
ELPV = DATA / "elpv"
TOOL = "solar-cell"


def open_at(data_dir: Path, url: str | None = None) -> Studio:
    return open_studio(Settings(data_dir, url or f"sqlite:///{data_dir / 'studio.db'}"))


def add_legacy_anomaly(studio: Studio, tool_name: str) -> None:
    """The committed PatchCore artifact as the tool's active anomaly version (no training)."""
    folder = studio.settings.models_dir / tool_name / "legacy-anomaly"
    shutil.copytree(DATA / "legacy_models" / "anomaly", folder)
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        version = repo.add_model_version(session, tool_id=tool.id, method="anomaly", profile="fast", status="candidate",
                                         metrics={"validation": {}}, artifact_dir=f"{tool_name}/legacy-anomaly",
                                         train_seconds=0.0, n_samples=5)
        versions_repo.set_active(session, tool, version)


def add_operating_point(studio: Studio, tool_name: str) -> None:
    """A stored operating point on the two active versions (it names their ids, which an import renumbers)."""
    versions = load_tool_models(studio, tool_name).version_ids
    combination = Combination(-0.2, MappingProxyType({"classifier": 0.8, "anomaly": 0.6}))
    point = OperatingPoint(MappingProxyType(versions), Targets(max_review=0.2), combination, 0.35, 0.6, "test")
    change_settings(studio, tool_name, SYSTEM, {"operating_point": point.as_json()})


@pytest.fixture(scope="package")
def source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("bundle-source") / "data"
    studio = open_at(data_dir)
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    assert import_path(studio, TOOL, ELPV, actor=SYSTEM).imported == 40
    train(studio, TOOL, profile="fast", actor=SYSTEM)  # the classifier
    train(studio, TOOL, method="knn", profile="fast", activate=False,
        actor=SYSTEM)  # a candidate: bundles of chosen versions
    add_legacy_anomaly(studio, TOOL)
    set_roi(studio, TOOL, [0.05, 0.05, 0.95, 0.95], SYSTEM)
    add_operating_point(studio, TOOL)
    change_settings(studio, TOOL, SYSTEM, {"threshold.classifier": 0.45, "live.smoothing": 3})
    create_recipe(studio, "line-1", "cells", 7, [{"tool": TOOL, "threshold": 0.5}], actor=SYSTEM)
    studio.engine.dispose()
    return data_dir


@pytest.fixture
def source(source_dir: Path) -> Iterator[Studio]:
    """The source studio (read only: tests export from it and predict without recording)."""
    studio = open_at(source_dir)
    yield studio
    studio.engine.dispose()


@pytest.fixture(scope="package")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, Path]:
    """A key pair and a trusted-keys folder holding its public key."""
    folder = tmp_path_factory.mktemp("keys")
    pair = generate_key_pair(folder / "private", "engineer")
    trusted = folder / "trusted"
    trusted.mkdir()
    shutil.copy(pair.public_key, trusted)
    return pair, trusted


@pytest.fixture(scope="package")
def bundles(source_dir: Path, keys: tuple[KeyPair, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``plain`` (no images), ``signed`` (no images, signed) and ``images`` (with the dataset)."""
    folder = tmp_path_factory.mktemp("bundles")
    studio = open_at(source_dir)
    paths = {"plain": folder / "plain.zip", "signed": folder / "signed.zip", "images": folder / "images.zip"}
    export_bundle(studio, TOOL, paths["plain"], actor=SYSTEM)
    export_bundle(studio, TOOL, paths["signed"], sign_key=keys[0].private_key, actor=SYSTEM)
    export_bundle(studio, TOOL, paths["images"], with_images=True, actor=SYSTEM)
    studio.engine.dispose()
    return paths


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Studio]:
    """A fresh, empty studio: another data folder and another SQLite database."""
    studio = open_at(tmp_path / "station")
    yield studio
    studio.engine.dispose()
