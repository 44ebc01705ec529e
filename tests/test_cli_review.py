"""The review and model-version commands end to end (``python -m core`` subprocesses) on real cells:
train --candidate, models list / promote / rollback / compare, review next / verdict / undo, audit."""

from __future__ import annotations

import json
from pathlib import Path

from core.audit import SYSTEM
from core.config import Settings
from core.images import decode_image, encode_png
from core.inspect.decision import Verdict
from core.samples import import_path
from core.studio import open_studio
from core.tools import create_tool
from tests.inspections import record
from tests.test_cli_e2e import ELPV, _cli, _env

TOOL = "cells"


def _json(result) -> object:  # noqa: ANN001 - a CompletedProcess
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_candidate_promote_rollback_and_review_from_the_command_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    import_path(studio, TOOL, ELPV, actor=SYSTEM)
    env = _env(data_dir)
    good = sorted((ELPV / "good").glob("*.png"))

    v1 = _json(_cli(env, "train", "--tool", TOOL, "--user", "eva", "--device", "pc-1"))["version_id"]
    v2 = _json(_cli(env, "train", "--tool", TOOL, "--candidate", "--seed", "1", "--user", "eva",
                    "--device", "pc-1"))["version_id"]
    listed = _json(_cli(env, "models", "list", "--tool", TOOL))
    assert {v["version"]: v["status"] for v in listed["versions"]} == {v1: "active", v2: "candidate"}
    assert _json(_cli(env, "predict", "--tool", TOOL, "--no-record", str(good[0])))["model_version"] == v1

    assert _json(_cli(env, "models", "promote", str(v2), "--tool", TOOL, "--reviewer", "eva", "--device", "pc-1")) \
        == {"active": v2, "replaced": v1}
    assert _json(_cli(env, "predict", "--tool", TOOL, "--no-record", str(good[0])))["model_version"] == v2
    assert _json(_cli(env, "models", "rollback", "--tool", TOOL, "--reviewer", "eva", "--device", "pc-1")) \
        == {"active": v1}
    assert _json(_cli(env, "predict", "--tool", TOOL, "--no-record", str(good[0])))["model_version"] == v1
    compared = _json(_cli(env, "models", "compare", str(v1), str(v2), "--tool", TOOL))
    assert set(compared["versions"]) == {str(v1), str(v2)}

    flagged = record(studio, TOOL, Verdict("review", "good", 0.45), {"good": 0.55, "defective": 0.45},
                     encode_png(decode_image(good[3].read_bytes()).rgb))
    me = ("--reviewer", "olaf", "--device", "tablet-9")
    card = _json(_cli(env, "review", "next", "--tool", TOOL, *me))
    assert card["inspection_id"] == flagged and card["reason"] == "uncertain"
    refused = _cli(env, "review", "verdict", str(flagged), "good", "--reviewer", "ana", "--device", "tablet-2")
    assert refused.returncode == 1 and "being reviewed on another device" in refused.stderr
    review_id = _json(_cli(env, "review", "verdict", str(flagged), "defective", *me))["review_id"]
    assert _json(_cli(env, "review", "queue", "--tool", TOOL))["waiting"]["uncertain"] == 0
    assert _json(_cli(env, "review", "undo", *me)) == {"review_id": review_id, "inspection_id": flagged}
    assert _json(_cli(env, "review", "queue", "--tool", TOOL))["waiting"]["uncertain"] == 1

    every = [json.loads(line) for line in _cli(env, "audit", "--tool", TOOL).stdout.splitlines()]
    # promote and rollback are e-signed with the password the CLI signed in with
    assert [(e["who"], e["target"], e["details"]["meaning"]) for e in every if e["action"] == "sign"] == [
        ("eva", f"model_version {v2}", "approved"), ("eva", f"model_version {v1}", "approved")]
    entries = [e for e in every if e["action"] not in ("sign", "tool_create")]
    assert [(e["action"], e["who"], e["device"]) for e in entries] == [
        ("train_activate", "eva", "pc-1"), ("train_candidate", "eva", "pc-1"),  # trainings are audited too
        ("promote", "eva", "pc-1"), ("rollback", "eva", "pc-1"), ("verdict", "olaf", "tablet-9"),
        ("undo", "olaf", "tablet-9")]
    assert [e["target"] for e in entries[:2]] == [f"model_version {v1}", f"model_version {v2}"]
    studio.engine.dispose()
