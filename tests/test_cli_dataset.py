"""The dataset commands of ``python -m core samples`` as real subprocesses on real ELPV cells."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from tests.core.test_export_and_mvtec import mvtec  # noqa: F401 - fixture
from tests.test_cli_e2e import _cli, _env


def test_samples_list_stats_edit_export_and_mvtec_import(tmp_path: Path, mvtec: Path) -> None:  # noqa: F811
    env = _env(tmp_path / "data")
    assert _cli(env, "tools", "create", "solar", "--classes", "good").returncode == 0

    done = _cli(env, "samples", "import", str(mvtec), "--tool", "solar")  # the layout is detected
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == ["imported: 13", "skipped duplicates: 0", "rejected: 0"]
    assert "import files: 100%" in done.stderr

    listed = _cli(env, "samples", "list", "--tool", "solar", "--label", "crack,finger", "--split", "held_out")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 5 and {r["label"] for r in rows} == {"crack", "finger"}
    assert sum(r["mask"] for r in rows) == 4
    assert "page 1 of 1; 5 sample(s)" in listed.stderr

    ids = ",".join(str(r["id"]) for r in rows[:2])
    assert json.loads(_cli(env, "samples", "delete", ids, "--tool", "solar").stdout)["deleted"] == \
        sorted(r["id"] for r in rows[:2])
    assert json.loads(_cli(env, "samples", "restore", ids, "--tool", "solar").stdout) == {"restored": 2}
    assert json.loads(_cli(env, "samples", "relabel", ids, "--to", "good", "--tool", "solar").stdout) == \
        {"relabelled": 2}
    assert json.loads(_cli(env, "samples", "split", ids, "--to", "train", "--tool", "solar").stdout) == \
        {"changed": 2}
    refused = _cli(env, "samples", "relabel", ids, "--to", "nope", "--tool", "solar")
    assert refused.returncode == 1 and "'nope' is not a class" in refused.stderr

    stats = json.loads(_cli(env, "samples", "stats", "--tool", "solar").stdout)
    # the two newest held-out defects (test/finger) are now good training samples
    assert {c["label"]: (c["train"], c["held_out"]) for c in stats["classes"]} == \
        {"good": (8, 2), "crack": (0, 3), "finger": (0, 0)}

    archive = tmp_path / "solar.zip"
    exported = _cli(env, "samples", "export", str(archive), "--tool", "solar")
    assert json.loads(exported.stdout.splitlines()[-1]) == {"path": str(archive.resolve()), "samples": 13}
    with zipfile.ZipFile(archive) as opened:
        assert "manifest.csv" in opened.namelist()
    assert _cli(env, "tools", "create", "copy", "--classes", "good,crack,finger").returncode == 0
    again = _cli(env, "samples", "import", str(archive), "--tool", "copy")
    assert again.stdout.splitlines()[:3] == ["imported: 13", "skipped duplicates: 0", "rejected: 0"]
