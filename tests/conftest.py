"""Shared fixtures: a studio on a fresh SQLite or PostgreSQL database, and real ELPV images."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Settings
from core.studio import Studio, open_studio
from tests.postgres import TemporaryPostgres

DATA = Path(__file__).resolve().parent / "data"
ELPV_SUBSET = DATA / "elpv"  # good/ and defective/ sub-folders of real ELPV cells
_database_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres]:
    """One PostgreSQL server for the whole run (a fresh database per test)."""
    server = TemporaryPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    server: TemporaryPostgres = request.getfixturevalue("postgres")
    return server.create_database(f"test_{next(_database_names)}")


@pytest.fixture
def studio(tmp_path: Path) -> Studio:
    """A studio on SQLite in a temporary data folder."""
    return open_studio(Settings(data_dir=tmp_path / "data",
                                database_url=f"sqlite:///{tmp_path / 'data' / 'studio.db'}"))


@pytest.fixture
def any_studio(tmp_path: Path, database_url: str) -> Studio:
    """A studio on each backend (SQLite and PostgreSQL) in turn."""
    return open_studio(Settings(data_dir=tmp_path / "data", database_url=database_url))


@pytest.fixture(scope="session")
def elpv_subset() -> Path:
    """Folder of committed real ELPV cells: ``good/`` and ``defective/``."""
    return ELPV_SUBSET


# Whole folders and modules that train models, start services, browsers or subprocesses: the fast lane
# (`./test.sh -m "not slow"`) leaves them out. Markers of their own say which kind they are.
SLOW_PATHS = ("e2e/", "chaos/", "line/", "bench/", "core/live/", "core/test_training.py",
              "core/test_anomaly_training.py", "core/test_model_versions.py", "core/test_third_method.py",
              "core/test_store_safety.py", "pages/", "test_cli_", "models/test_classifier.py", "core/bundle/",
              "models/test_anomaly.py")
KIND_MARKERS = {"e2e/": "e2e", "chaos/": "chaos", "line/": "line"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent
    for item in items:
        relative = Path(item.fspath).resolve().relative_to(root).as_posix()
        if relative.startswith(SLOW_PATHS) or any(m.name in ("chaos", "line", "e2e") for m in item.iter_markers()):
            item.add_marker(pytest.mark.slow)
        for prefix, marker in KIND_MARKERS.items():
            if relative.startswith(prefix):
                item.add_marker(getattr(pytest.mark, marker))
