"""End to end through the real command line (``python -m core`` as subprocesses) on real ELPV cells.

The studio lives in a temporary STUDIO_DATA_DIR. The tool ``cells`` is trained on the 40 committed
cells and predicts 60 other cells of the installed ELPV package (30 good: defect probability 0;
30 defective: >= 0.5), written as PNG files like the committed ones.

Measured (2 CPU cores): ROC AUC of the defect score on these 60 cells 0.76; accuracy of the
pass/fail decisions 0.68 (review counted as wrong; 3 of 60 went to review). Over 200 package cells
the same model reaches AUC 0.78, and the 5th percentile over random 60-cell draws is 0.69.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select

from core.audit import SYSTEM
from core.config import Settings
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tools import create_tool, get_tool, list_tools
from models.profiles import DEFAULT_PROFILE
from storage.tables import Inspection
from tests.cli_accounts import add_accounts

ROOT = Path(__file__).resolve().parent.parent
ELPV = Path(__file__).resolve().parent / "data" / "elpv"
PER_CLASS = 30
RESULT_KEYS = {"path", "decision", "label", "score", "scores", "model_version", "ms", "models", "degraded"}


def _env(data_dir: Path) -> dict[str, str]:
    """The environment of a CLI subprocess on a studio in ``data_dir``, acting as an admin account."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STUDIO_DATA_DIR")}
    env["STUDIO_DATA_DIR"] = str(data_dir)
    return add_accounts(env)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _inspections(data_dir: Path) -> int:
    studio = open_studio(Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'studio.db'}"))
    try:
        with studio.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(Inspection)))
    finally:
        studio.engine.dispose()


def _stored_images(data_dir: Path) -> int:
    return sum(1 for p in (data_dir / "images").rglob("*") if p.is_file())


def _elpv_package() -> tuple[list[Path], np.ndarray]:
    """Image files and defect probabilities of the installed ELPV package, in ``load_dataset()``
    order (read from its labels file, so only the cells used here are decoded)."""
    from elpv_dataset import utils

    labels = Path(utils.__file__).parent / "data" / "labels.csv"
    rows = np.genfromtxt(labels, dtype=["|S19", "<f8", "|S4"], names=["path", "probability", "type"])
    return [labels.parent / name for name in np.char.decode(rows["path"])], rows["probability"]


def _held_out_cells(folder: Path) -> dict[str, int]:
    """PNG files of package cells that are not committed; returns path -> 1 if defective else 0."""
    files, probability = _elpv_package()
    committed = {int(p.stem.split("_")[1]): p for p in ELPV.rglob("cell_*.png")}
    assert len(committed) == 40
    for index, path in list(committed.items())[:3]:  # the file names index the package's order
        assert np.array_equal(np.asarray(Image.open(path).convert("L")), np.asarray(Image.open(files[index])))
    rng = np.random.default_rng(2024)
    folder.mkdir()
    truth: dict[str, int] = {}
    pools = {0: np.flatnonzero(probability == 0), 1: np.flatnonzero(probability >= 0.5)}
    for label, pool in pools.items():
        for index in rng.choice([i for i in pool if i not in committed], PER_CLASS, replace=False):
            path = folder / f"cell_{index:04d}.png"
            Image.open(files[index]).convert("L").save(path)
            truth[str(path)] = label
    return truth


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole session once: create, list, import twice, train, list, predict, predict --no-record."""
    base = tmp_path_factory.mktemp("cli")
    data_dir = base / "data"
    env = _env(data_dir)
    out: dict = {"data_dir": data_dir, "env": env}
    out["create"] = _cli(env, "tools", "create", "cells", "--classes", "good,defective")
    out["list"] = _cli(env, "tools", "list", "--format", "json")
    out["import"] = _cli(env, "samples", "import", "tests/data/elpv", "--tool", "cells")
    out["reimport"] = _cli(env, "samples", "import", "tests/data/elpv", "--tool", "cells")
    out["train"] = _cli(env, "train", "--tool", "cells")
    assert out["train"].returncode == 0, out["train"].stderr

    truth = _held_out_cells(base / "held-out")
    broken = base / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)  # a PNG signature, then nothing usable
    missing = base / "missing.png"
    paths = list(truth)
    paths.insert(PER_CLASS, str(broken))
    paths.append(str(missing))
    out["truth"], out["broken"], out["missing"], out["paths"] = truth, str(broken), str(missing), paths
    out["predict"] = _cli(env, "predict", "--tool", "cells", *paths)
    out["inspections_after_predict"] = _inspections(data_dir)
    out["images_after_predict"] = _stored_images(data_dir)
    # cells not inspected before (a recorded fail would store a new image): the training defects
    out["no_record_paths"] = [str(p) for p in sorted((ELPV / "defective").glob("*.png"))[:3]]
    out["no_record"] = _cli(env, "predict", "--tool", "cells", "--no-record", *out["no_record_paths"])
    out["inspections_after_no_record"] = _inspections(data_dir)
    out["images_after_no_record"] = _stored_images(data_dir)
    return out


# --- the happy path ---------------------------------------------------------------------------------
def test_tools_create_and_list(run) -> None:
    assert run["create"].returncode == 0, run["create"].stderr
    created = json.loads(run["create"].stdout)
    assert created["name"] == "cells" and created["classes"] == ["good", "defective"]
    assert created["good_class"] == "good" and created["active_versions"] == {}
    assert run["list"].returncode == 0
    listed = json.loads(run["list"].stdout)
    assert [(t["name"], t["classes"], t["active_versions"]) for t in listed] == [("cells", ["good", "defective"], {})]


def test_samples_import_then_reimport_skips_duplicates(run) -> None:
    first, second = run["import"], run["reimport"]
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "imported: 40" in _lines(first.stdout)
    assert "skipped duplicates: 0" in _lines(first.stdout)
    assert "import files: 100%" in first.stderr  # progress goes to stderr
    assert "imported: 0" in _lines(second.stdout)
    assert "skipped duplicates: 40" in _lines(second.stdout)
    # the README next to the cell folders has no class: reported, not imported
    assert any(line.startswith("rejected SOURCE.md") for line in _lines(first.stdout))


def test_train_reports_progress_on_stderr_and_json_last_on_stdout(run) -> None:
    result = run["train"]
    for stage in ("loading", "features", "validation", "fit", "saving", "done"):
        assert f"train {stage}: " in result.stderr, stage
    assert "train features: 100%" in result.stderr
    stdout = _lines(result.stdout)
    assert len(stdout) == 1
    summary = json.loads(stdout[-1])
    assert {"version_id", "method", "profile", "seconds", "validation"} <= summary.keys()
    assert summary["method"] == "classifier" and summary["profile"] == DEFAULT_PROFILE and summary["seconds"] > 0
    assert summary["n_samples"] == 40 and summary["skipped"] == []
    validation = summary["validation"]
    assert 0.0 <= validation["balanced_accuracy"] <= 1.0
    assert np.array(validation["confusion"]).sum() == 40
    studio = open_studio(Settings(run["data_dir"], f"sqlite:///{run['data_dir'] / 'studio.db'}"))
    assert get_tool(studio, "cells").active_versions == {"classifier": summary["version_id"]}
    studio.engine.dispose()


def test_predict_prints_one_json_line_per_file(run) -> None:
    result = run["predict"]
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in _lines(result.stdout)]
    assert [r["path"] for r in rows] == run["paths"]  # one line per path, in order
    version = json.loads(_lines(run["train"].stdout)[-1])["version_id"]
    good_rows = [r for r in rows if "error" not in r]
    assert len(good_rows) == 2 * PER_CLASS
    for row in good_rows:
        assert RESULT_KEYS <= row.keys()
        assert row["decision"] in ("pass", "fail", "review")
        assert 0.0 <= row["score"] <= 1.0 and row["model_version"] == version and row["ms"] > 0
        assert set(row["scores"]) == {"good", "defective"}
        assert row["score"] == pytest.approx(1.0 - row["scores"]["good"], abs=1e-5)
        assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        expected = {"pass": {"good"}, "fail": {"defective"}, "review": {"good", "defective"}}[row["decision"]]
        assert row["label"] in expected
        # each deciding model's opinion, in the one opinions format (here the classifier alone)
        assert row["models"] == {"classifier": {"version": version, "decision": row["decision"], "label": row["label"],
                                                "score": pytest.approx(row["score"], abs=1e-5),
                                                "threshold": pytest.approx(row["models"]["classifier"]["threshold"])}}
        assert 0.0 < row["models"]["classifier"]["threshold"] < 1.0 and row["degraded"] is True
    decisions = {r["decision"] for r in good_rows}
    assert {"pass", "fail"} <= decisions  # the model does not answer the same for every cell


def test_corrupt_and_missing_files_get_an_error_line_and_the_rest_still_runs(run) -> None:
    rows = {r["path"]: r for r in map(json.loads, _lines(run["predict"].stdout))}
    for bad in (run["broken"], run["missing"]):
        assert set(rows[bad]) == {"path", "error"} and rows[bad]["error"], bad
    assert "cannot read" in rows[run["missing"]]["error"]
    # the file after the broken one was inspected normally
    after_broken = run["paths"][run["paths"].index(run["broken"]) + 1]
    assert "error" not in rows[after_broken]


def test_predictions_on_held_out_cells_beat_chance(run) -> None:
    rows = {r["path"]: r for r in map(json.loads, _lines(run["predict"].stdout))}
    truth = run["truth"]
    y = np.array([truth[p] for p in truth])
    scores = np.array([rows[p]["score"] for p in truth])
    auc = float(roc_auc_score(y, scores))
    decided = np.array([1 if rows[p]["decision"] == "fail" else 0 if rows[p]["decision"] == "pass" else -1
                        for p in truth])
    accuracy = float(np.mean(decided == y))  # review counts as wrong
    print(f"held-out AUC {auc:.3f}, accuracy {accuracy:.3f}, reviews {int(np.sum(decided == -1))}")
    assert auc > 0.65, auc  # measured 0.76
    assert accuracy > 0.55, accuracy  # measured 0.68; chance 0.5


def test_predict_records_inspections_and_no_record_records_nothing(run) -> None:
    assert run["inspections_after_predict"] == 2 * PER_CLASS  # one per inspected file, none for errors
    assert run["no_record"].returncode == 0, run["no_record"].stderr
    rows = [json.loads(line) for line in _lines(run["no_record"].stdout)]
    assert [r["path"] for r in rows] == run["no_record_paths"]
    assert all("score" in r and r["inspection_id"] is None for r in rows)
    assert any(r["decision"] != "pass" for r in rows)  # recorded, these would have stored an image
    assert run["inspections_after_no_record"] == run["inspections_after_predict"]
    assert run["images_after_no_record"] == run["images_after_predict"]
    recorded = [json.loads(line) for line in _lines(run["predict"].stdout)]
    assert len({r["inspection_id"] for r in recorded if "error" not in r}) == 2 * PER_CLASS


# --- bad input: a non-zero exit code and one clear line on stderr ---------------------------------
PROGRESS_LINE = re.compile(r"^[a-z]+ [a-z :]+: \d+%$")


def _assert_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit code != 0; stderr holds one line ``error: ...`` (besides progress lines), no traceback."""
    assert result.returncode != 0
    lines = _lines(result.stderr)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert all(line in errors or PROGRESS_LINE.match(line) for line in lines), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def blank(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Studio]:
    """Another studio, with one untrained tool ``cells``."""
    data_dir = tmp_path_factory.mktemp("blank") / "data"
    env = _env(data_dir)
    assert _cli(env, "tools", "create", "cells", "--classes", "good,defective").returncode == 0
    return env, open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))


def test_unknown_tool_is_an_error(blank) -> None:
    env, _ = blank
    result = _cli(env, "predict", "--tool", "nope", str(ELPV / "good" / "cell_0085.png"))
    _assert_error(result, "no tool named 'nope'", "cells")
    assert _lines(result.stderr) == [_assert_error(result)]  # exactly one line
    assert result.stdout == ""


def test_predict_without_a_trained_model_is_an_error(blank) -> None:
    env, _ = blank
    _assert_error(_cli(env, "predict", "--tool", "cells", str(ELPV / "good" / "cell_0085.png")), "no trained model")


def test_tool_without_good_class_is_refused(blank) -> None:
    env, studio = blank
    result = _cli(env, "tools", "create", "x", "--classes", "crack")
    _assert_error(result, "'good'")
    assert len(_lines(result.stderr)) == 1
    assert "x" not in [tool.name for tool in list_tools(studio)]


def test_importing_an_empty_folder_is_an_error(blank, tmp_path: Path) -> None:
    env, _ = blank
    (tmp_path / "empty").mkdir()
    result = _cli(env, "samples", "import", str(tmp_path / "empty"), "--tool", "cells")
    _assert_error(result, "no files")
    assert len(_lines(result.stderr)) == 1


def test_training_a_tool_with_one_class_points_to_anomaly_detection(blank) -> None:
    env, studio = blank
    create_tool(studio, "solo", ["good", "defective"], actor=SYSTEM)
    assert import_path(studio, "solo", ELPV / "good", label="good", actor=SYSTEM).imported == 20
    _assert_error(_cli(env, "train", "--tool", "solo"), "anomaly")
    assert not get_tool(studio, "solo").trained
