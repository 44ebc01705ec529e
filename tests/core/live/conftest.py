"""A studio with tool ``solar-cell`` trained on the 40 committed ELPV cells (built once per module)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.audit import SYSTEM
from core.config import Settings
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tools import create_tool
from core.training import train

ELPV = Path(__file__).resolve().parents[2] / "data" / "elpv"
TOOL = "solar-cell"


def open_at(data_dir: Path) -> Studio:
    return open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))


@pytest.fixture(scope="package")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("live-trained") / "data"
    studio = open_at(data_dir)
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    assert import_path(studio, TOOL, ELPV, actor=SYSTEM).imported == 40
    train(studio, TOOL, actor=SYSTEM)
    studio.engine.dispose()
    return data_dir


@contextmanager
def private_copy(template: Path, data_dir: Path) -> Iterator[Studio]:
    """A studio opened on a copy of ``template`` at ``data_dir`` (closed at the end)."""
    shutil.copytree(template, data_dir)
    studio = open_at(data_dir)
    try:
        yield studio
    finally:
        studio.engine.dispose()


@pytest.fixture
def trained(trained_template: Path, tmp_path: Path) -> Iterator[Studio]:
    """A private copy of the trained studio."""
    with private_copy(trained_template, tmp_path / "data") as studio:
        yield studio


def cells(label: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted((ELPV / label).glob("*.png"))]


@pytest.fixture(scope="package")
def both_template(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained studio plus an anomaly model trained on its good cells (cross-check policy)."""
    data_dir = tmp_path_factory.mktemp("live-both") / "data"
    with private_copy(trained_template, data_dir) as studio:
        train(studio, TOOL, method="anomaly", actor=SYSTEM)
    return data_dir


@pytest.fixture
def both(both_template: Path, tmp_path: Path) -> Iterator[Studio]:
    """A private copy of the studio with a classifier and an anomaly model."""
    with private_copy(both_template, tmp_path / "both-data") as studio:
        yield studio
