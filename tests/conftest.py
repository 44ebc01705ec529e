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
