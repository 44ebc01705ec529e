"""CLI tests act as real accounts: the accounts exist in the test's studio, and ``STUDIO_USER`` /
``STUDIO_PASSWORD`` in the subprocess's environment say who runs a command without ``--user``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from core.audit import SYSTEM
from core.auth import accounts
from core.auth.roles import Role
from core.config import Settings
from core.errors import NotFoundError
from core.studio import Studio, open_studio

PASSWORD = "cli-test-password-1"  # every CLI test account's password
USER = "tester"  # who a command without --user runs as
NAMES = (USER, "ana", "eva", "ines", "olaf", "chaos")  # the names the CLI tests pass to --user / --reviewer


def add_accounts(env: dict[str, str], names: Iterable[str] = NAMES, role: Role = Role.ADMIN) -> dict[str, str]:
    """Create the accounts (if missing) in the studio ``env`` points at; ``env`` then acts as ``USER``."""
    data_dir = Path(env["STUDIO_DATA_DIR"])
    studio = open_studio(Settings(data_dir=data_dir,
                                  database_url=env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'studio.db'}"))
    try:
        create_accounts(studio, names, role)
    finally:
        studio.engine.dispose()
    env.update(STUDIO_USER=USER, STUDIO_PASSWORD=PASSWORD)
    env.pop("STUDIO_TOKEN", None)
    return env


def create_accounts(studio: Studio, names: Iterable[str] = NAMES, role: Role = Role.ADMIN) -> None:
    """The accounts ``names`` with ``role`` and ``PASSWORD`` (those that exist already are left alone)."""
    for name in names:
        try:
            accounts.get_user(studio, name)
        except NotFoundError:
            accounts.create_user(studio, SYSTEM, name, PASSWORD, role)


def act_as(monkeypatch: pytest.MonkeyPatch, studio: Studio, names: Iterable[str] = NAMES,
           role: Role = Role.ADMIN) -> None:
    """In-process ``core.cli.main`` calls act as ``USER`` (the accounts are created in ``studio``)."""
    create_accounts(studio, names, role)
    monkeypatch.setenv("STUDIO_USER", USER if USER in names else next(iter(names)))
    monkeypatch.setenv("STUDIO_PASSWORD", PASSWORD)
    monkeypatch.delenv("STUDIO_TOKEN", raising=False)
