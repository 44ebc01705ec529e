"""``python -m core tools show / set / roi / classes`` as real subprocesses: typed, validated, audited.

A bad value is one clear ``error:`` line on stderr, a non-zero exit code, no traceback, and nothing
stored (a command with one bad change among good ones changes nothing). Every change that is stored
is in the audit log with who made it and from which device. The tables of bad values run through the
same entry point in this process (``core.cli.main``, what ``python -m core`` calls; one process each
would start the interpreter a dozen times for the same check); the first bad setting as a real subprocess.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from core.cli import main
from tests.test_cli_e2e import ELPV, _assert_error, _cli, _env, _lines

TOOL = "cells"
ME = ("--user", "ines", "--device", "pc-7")


def _json(result) -> object:  # noqa: ANN001 - a CompletedProcess
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(_lines(result.stdout)[-1])


def _audit(env: dict[str, str], *, signatures: bool = False) -> list[dict]:
    """The tool's audit rows, newest first, without its creation and (unless ``signatures``) the e-signature
    rows of signed changes (thresholds, policy: the CLI signs with the password it signed in with)."""
    skip = {"tool_create"} | (set() if signatures else {"sign"})
    entries = [entry for line in _lines(_cli(env, "audit", "--tool", TOOL).stdout)
               if (entry := json.loads(line))["action"] not in skip]
    assert all(entry["details"].pop("via") == "cli" for entry in entries)  # every row says how: the CLI
    return entries


def _in_process(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m core ARGS`` as ``core.cli.main(ARGS)`` in this process, on the studio and account of ``env``;
    its exit code and output as a CompletedProcess (what ``_assert_error`` checks)."""
    for name in ("STUDIO_DATA_DIR", "STUDIO_USER", "STUDIO_PASSWORD"):
        monkeypatch.setenv(name, env[name])
    for name in ("DATABASE_URL", "STUDIO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["python", "-m", "core", *args], code, out.out, out.err)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A studio with one untrained tool ``cells`` (good, defective)."""
    env = _env(tmp_path / "data")
    assert _cli(env, "tools", "create", TOOL, "--classes", "good,defective").returncode == 0
    return env


def test_show_an_untrained_tool_gives_the_defaults_and_says_why_nothing_decides(env: dict[str, str]) -> None:
    shown = _json(_cli(env, "tools", "show", TOOL))
    assert shown["name"] == TOOL and shown["classes"] == ["good", "defective"] and shown["roi"] is None
    assert shown["active_versions"] == {}
    settings = shown["settings"]
    assert settings["policy"] == "cross-check" and settings["thresholds"] == {} and settings["audit_share"] == 0.0
    assert settings["roi_frame"] == [640, 480] and settings["live"]["smoothing"] == 5
    assert "no trained model" in shown["deciding"]["error"]
    _assert_error(_cli(env, "tools", "show", "nope"), "no tool named 'nope'", TOOL)


def test_set_changes_several_settings_at_once_and_the_audit_log_says_who(env: dict[str, str]) -> None:
    stored = _json(_cli(env, "tools", "set", TOOL, "threshold.classifier=0.4", "policy=anomaly only",
                        "audit_share=0.1", "live.smoothing=3", "live.tta=on", *ME))
    assert stored["thresholds"] == {"classifier": 0.4} and stored["policy"] == "anomaly only"
    assert stored["audit_share"] == 0.1 and stored["live"]["smoothing"] == 3 and stored["live"]["tta"] is True
    assert _json(_cli(env, "tools", "show", TOOL))["settings"] == stored  # kept

    (entry,) = _audit(env)
    signed = [e for e in _audit(env, signatures=True) if e["action"] == "sign"]
    assert [(e["who"], e["details"]["meaning"]) for e in signed] == [("ines", "approved")]
    assert (entry["action"], entry["who"], entry["device"], entry["target"]) == \
        ("settings", "ines", "pc-7", f"tool {TOOL}")
    changes = entry["details"]["changes"]
    assert changes["thresholds"] == {"from": {}, "to": {"classifier": 0.4}}
    assert changes["policy"] == {"from": "cross-check", "to": "anomaly only"}
    assert changes["audit_share"] == {"from": 0.0, "to": 0.1}
    assert set(changes) == {"thresholds", "policy", "audit_share", "live"}

    # back to the calibrated threshold; the same values again change nothing and log nothing
    assert _json(_cli(env, "tools", "set", TOOL, "threshold.classifier=calibrated", *ME))["thresholds"] == {}
    assert _json(_cli(env, "tools", "set", TOOL, "policy=anomaly only", *ME))["policy"] == "anomaly only"
    assert [e["action"] for e in _audit(env)] == ["settings", "settings"]


BAD_CHANGES = [
    ("threshold.classifier=1.5", "threshold.classifier must be between 0 and 1"),
    ("threshold.classifier=high", "must be a number"),
    ("threshold.nope=0.4", "unknown model method 'nope'"),
    ("policy=both", "unknown policy 'both'"),
    ("audit_share=-0.1", "audit_share must be between 0 and 1"),
    ("live.smoothing=many", "'many' is not a int"),
    ("live.smoothing=99", "smoothing is 1 to 30 frames"),
    ("live.tta=maybe", "'maybe' is not true or false"),
    ("live.colour=red", "unknown live setting 'colour'"),
    ("threshold=0.4", "unknown tool setting 'threshold'"),
    ("shifts=early 6-99", "hours must be 0-23"),
    ("roi_frame=10x10", "at least 16 x 16"),
    ("threshold.classifier", "write NAME=VALUE"),
]


def test_a_bad_value_is_one_clear_error_and_stores_nothing(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    before = _json(_cli(env, "tools", "show", TOOL))["settings"]
    for index, (change, fragment) in enumerate(BAD_CHANGES):
        args = ("tools", "set", TOOL, "audit_share=0.2", change, *ME)  # a good change with the bad one
        result = _cli(env, *args) if index == 0 else _in_process(env, monkeypatch, capsys, *args)
        _assert_error(result, fragment)
        assert result.stdout == "", change
    assert _json(_cli(env, "tools", "show", TOOL))["settings"] == before
    assert _audit(env) == []
    _assert_error(_cli(env, "tools", "set", "nope", "audit_share=0.2", *ME), "no tool named 'nope'")


def test_roi_sets_the_region_and_its_frame_and_none_clears_it(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _json(_cli(env, "tools", "roi", TOOL, "0.1,0.2,0.9,0.8", "--frame", "1280x720", *ME)) == \
        {"roi": [0.1, 0.2, 0.9, 0.8]}
    shown = _json(_cli(env, "tools", "show", TOOL))
    assert shown["roi"] == [0.1, 0.2, 0.9, 0.8] and shown["settings"]["roi_frame"] == [1280, 720]
    assert _json(_cli(env, "tools", "roi", TOOL, "none", *ME)) == {"roi": None}
    assert _json(_cli(env, "tools", "show", TOOL))["roi"] is None

    for box, frame, fragment in [("0.1,0.2,0.9", [], "four numbers"), ("a,b,c,d", [], "x0,y0,x1,y1"),
                                 ("0.5,0.5,0.51,0.51", [], "too small"),
                                 ("0.1,0.1,0.9,0.9", ["--frame", "640"], "a width and a height"),
                                 ("0.1,0.1,0.9,0.9", ["--frame", "wide"], "WIDTHxHEIGHT"),
                                 ("0.1,0.1,0.9,0.9", ["--frame", "8x8"], "at least 16 x 16")]:
        _assert_error(_in_process(env, monkeypatch, capsys, "tools", "roi", TOOL, box, *frame, *ME), fragment)
    assert _json(_cli(env, "tools", "show", TOOL))["roi"] is None  # nothing stored by the refused ones

    first, second = _audit(env)
    assert (first["action"], first["who"], first["device"]) == ("roi", "ines", "pc-7")
    assert first["details"] == {"from": None, "to": [0.1, 0.2, 0.9, 0.8], "frame": [1280, 720]}
    assert second["action"] == "roi" and second["details"] == {"from": [0.1, 0.2, 0.9, 0.8], "to": None}


def test_classes_are_replaced_but_good_and_classes_in_use_stay(env: dict[str, str]) -> None:
    assert _json(_cli(env, "tools", "classes", TOOL, "good,crack,Dent", *ME))["classes"] == ["good", "crack", "dent"]
    _assert_error(_cli(env, "tools", "classes", TOOL, "crack,dent", *ME), "must include 'good'")
    _assert_error(_cli(env, "tools", "classes", TOOL, "good,bad name", *ME), "class name 'bad name'")

    assert _cli(env, "samples", "import", str(ELPV / "good"), "--tool", TOOL, "--label", "good").returncode == 0
    assert _cli(env, "tools", "classes", TOOL, "good,crack,defective", *ME).returncode == 0
    assert _cli(env, "samples", "import", str(ELPV / "defective"), "--tool", TOOL,
                "--label", "defective").returncode == 0
    _assert_error(_cli(env, "tools", "classes", TOOL, "good,crack", *ME), "defective", "still label samples")
    assert _json(_cli(env, "tools", "show", TOOL))["classes"] == ["good", "crack", "defective"]

    entries = [(e["action"], e["who"], e["device"], e["details"]) for e in _audit(env)]
    assert entries == [
        ("classes", "ines", "pc-7", {"from": ["good", "defective"], "to": ["good", "crack", "dent"]}),
        ("classes", "ines", "pc-7", {"from": ["good", "crack", "dent"], "to": ["good", "crack", "defective"]})]
