"""``python -m core keys generate``, ``tools export --sign`` (the CLI's ``main`` in this process) and ``tools
import --require-signature`` (real subprocesses) between two data folders: JSON on stdout, the private key
never printed and mode 0600, a refused bundle one ``error:`` line with a non-zero exit code and nothing
imported."""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from core.audit import audit_log
from core.cli import main
from core.tools import list_tools
from tests.cli_accounts import PASSWORD, USER, add_accounts
from tests.core.bundle.conftest import TOOL, open_at
from tests.test_cli_e2e import _assert_error, _cli, _env, _lines


def _json(result) -> dict:  # noqa: ANN001 - a CompletedProcess
    assert result.returncode == 0, result.stderr
    return json.loads(_lines(result.stdout)[-1])


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    """``python -m core ARGS`` in this process (the source studio: STUDIO_DATA_DIR)."""
    assert main(list(args)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    return json.loads(_lines(out)[-1]) | {"_stdout": out}


def test_sign_export_and_import_between_two_data_folders(source_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STUDIO_DATA_DIR", str(source_dir))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    add_accounts({"STUDIO_DATA_DIR": str(source_dir)})
    monkeypatch.setenv("STUDIO_USER", USER)
    monkeypatch.setenv("STUDIO_PASSWORD", PASSWORD)
    station = _env(tmp_path / "station")
    keys = _main(capsys, "keys", "generate", "engineer", "--dir", str(tmp_path / "keys"))
    private = Path(keys["private_key"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in private.read_text() and "PRIVATE" not in keys["_stdout"]
    (tmp_path / "trusted").mkdir()
    shutil.copy(keys["public_key"], tmp_path / "trusted")

    bundle = tmp_path / "cell.zip"
    exported = _main(capsys, "tools", "export", TOOL, str(bundle), "--sign", str(private))
    assert exported["signed_by"] == keys["fingerprint"] and exported["samples"] is None

    unsigned = tmp_path / "unsigned.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(unsigned, "w") as out:
        for name in src.namelist():
            if name != "manifest.sig":
                out.writestr(name, src.read(name))
    refused = _cli(station, "tools", "import", str(unsigned), "--require-signature", "--trusted-keys",
                   str(tmp_path / "trusted"), "--user", "ines")
    _assert_error(refused, "not signed")
    studio = open_at(tmp_path / "station")
    assert list_tools(studio) == []

    imported = _json(_cli(station, "tools", "import", str(bundle), "--as", "cell-2", "--require-signature",
                          "--trusted-keys", str(tmp_path / "trusted"), "--user", "ines", "--device", "pc-7"))
    assert imported["tool"] == "cell-2" and set(imported["active"]) == {"classifier", "anomaly"}
    assert imported["signature"] == f"signed by key {keys['fingerprint']} (trusted)"
    assert [(a.action, a.actor, a.device) for a in audit_log(studio, "cell-2")] == [("bundle_import", "ines", "pc-7")]
    studio.engine.dispose()
