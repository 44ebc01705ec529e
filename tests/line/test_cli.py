"""``python -m core outputs | recipes | station map`` (in process, on a fresh studio)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.audit import SYSTEM, audit_log
from core.cli import main
from core.config import Settings
from core.studio import open_studio
from core.tools import create_tool
from tests.cli_accounts import act_as


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("STUDIO_DATA_DIR", str(folder))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    create_tool(studio, "cells", "good,defective", actor=SYSTEM)
    act_as(monkeypatch, studio)  # the commands act as a real admin account
    studio.engine.dispose()
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines() if line.startswith(("{", "["))]


def test_outputs_secrets_never_shown(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_KEY", "a-long-webhook-key")
    code, out = run(
        capsys,
        "outputs",
        "add",
        "--station",
        "s1",
        "--name",
        "mes",
        "--kind",
        "webhook",
        "--url",
        "http://127.0.0.1:9/hook",
        "--secret-env",
        "HOOK_KEY",
    )
    assert code == 0 and out[0]["secret"] == "a-****"
    code, out = run(capsys, "outputs", "list", "--station", "s1")
    assert "a-long-webhook-key" not in json.dumps(out) and out[0][0]["backlog"] == 0
    assert main(["outputs", "add", "--station", "s1", "--name", "x", "--kind", "mqtt", "--url", "ftp://x"]) == 1
    assert "mqtt://" in capsys.readouterr().err
    code, out = run(capsys, "outputs", "test", "--station", "s1", "--name", "mes")  # nobody listens on port 9
    assert code == 1 and "unreachable" in out[0]["error"]
    assert run(capsys, "outputs", "remove", "--station", "s1", "--name", "mes")[0] == 0


def test_recipes_create_list_activate_audited(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(capsys, "recipes", "create", "--station", "s1", "--name", "a", "--number", "1", "--tools", "cells")[0] == 0
    )
    code, out = run(
        capsys,
        "recipes",
        "create",
        "--station",
        "s1",
        "--name",
        "b",
        "--number",
        "2",
        "--tools",
        '[{"tool": "cells", "threshold": 0.3, "roi": [0, 0, 0.5, 0.5]}]',
    )
    assert code == 0 and out[0]["tools"][0]["roi"] == [0, 0, 0.5, 0.5]
    assert main(["recipes", "create", "--station", "s1", "--name", "c", "--number", "2", "--tools", "cells"]) == 1
    assert main(["recipes", "create", "--station", "s1", "--name", "d", "--number", "3", "--tools", "nope"]) == 1
    capsys.readouterr()
    code, out = run(capsys, "recipes", "activate", "--station", "s1", "2")
    assert code == 0 and out[0]["name"] == "b" and out[0]["active"]
    code, out = run(capsys, "recipes", "list", "--station", "s1")
    assert [r["name"] for r in out[0] if r["active"]] == ["b"]
    studio = open_studio(Settings(data, f"sqlite:///{data / 'studio.db'}"))
    assert [e.details["via"] for e in audit_log(studio) if e.action == "recipe_activate"] == ["cli"]
    studio.engine.dispose()


def test_station_map_and_status(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "station", "map", "--format", "json")
    assert code == 0 and out[0]["coils (PLC writes)"][0]["name"] == "Trigger"
    assert main(["station", "trigger", "--station", "nowhere"]) == 1
    assert "not running" in capsys.readouterr().err
