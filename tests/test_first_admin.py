"""``scripts/first_admin.py`` (run.sh's first start): the admin's one-time password reaches the person
and no log. Without a terminal (as here, in a new session) it goes to a file only its owner can read;
stdout and stderr never hold it; a second start creates nothing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.auth.accounts import authenticate
from core.config import Settings
from core.studio import open_studio

ROOT = Path(__file__).resolve().parents[1]


def run(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    env.pop("STUDIO_AUTH", None)
    return subprocess.run([sys.executable, "scripts/first_admin.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, start_new_session=True, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_the_one_time_password_goes_to_a_private_file_never_to_the_output(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = run(data_dir)
    assert done.returncode == 0, done.stderr
    secret = data_dir / "first-admin-password.txt"
    password = secret.read_text().strip()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert password and password not in done.stdout + done.stderr
    assert str(secret) in done.stdout
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    try:
        assert authenticate(studio, "admin", password).must_change_password
    finally:
        studio.engine.dispose()

    secret.unlink()
    again = run(data_dir)
    assert again.returncode == 0 and again.stdout == "" and not secret.exists()
