"""The Line page (AppTest): status of a station, outputs with masked secrets, recipes, register map."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.audit import SYSTEM
from core.config import load_settings
from core.line.outbox import ensure_station
from core.line.outputs import add_output
from core.line.recipes import create_recipe, list_recipes
from core.studio import Studio, open_studio
from core.tools import create_tool
from storage.tables import utc_now

APP = Path(__file__).resolve().parents[2] / "app.py"


def _use(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Studio:
    monkeypatch.setenv("STUDIO_DATA_DIR", str(data_dir))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return open_studio(load_settings())


@pytest.fixture
def line_studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    studio = _use(tmp_path / "data", monkeypatch)
    yield studio
    studio.engine.dispose()


def open_line() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("pages/line.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Line"
    return at


def everything(at: AppTest) -> str:
    parts = [str(e.value) for e in (*at.markdown, *at.caption, *at.success, *at.warning, *at.error, *at.info)]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(parts)


def test_no_station_yet(line_studio: Studio) -> None:
    at = open_line()
    assert "station run" in at.info[0].value


def test_station_status_outputs_recipes_and_map(line_studio: Studio) -> None:
    studio = line_studio
    create_tool(studio, "cells", "good,defective", actor=SYSTEM)
    create_recipe(studio, "line1", "cell-a", 1, ["cells"], actor=SYSTEM)
    create_recipe(studio, "line1", "cell-b", 2, ["cells"], actor=SYSTEM)
    add_output(
        studio, "line1", "plant", "mqtt", "mqtt://127.0.0.1:1883/studio", username="cam", secret="supersecret-pw"
    , actor=SYSTEM)
    with studio.transaction() as session:
        row = ensure_station(session, "line1")
        row.heartbeat_at = utc_now()
        row.status = {
            "pid": 1,
            "source": {"kind": "camera", "source": "0", "connected": False, "error": "cannot open camera '0'"},
            "modbus": {"port": 5020, "state": "listening", "error": None},
            "outputs": {"plant": {"state": "error", "error": "broker refused the connection: Not authorized"}},
            "signals": {"Ready": False, "Error": True, "ErrorCode": 3},
            "errors": [{"at": "2026-12-06T02:00:00Z", "message": "camera lost: cannot open camera '0'"}],
        }
    at = open_line()
    text = everything(at)
    assert "is running" in text and "cannot open camera" in text and "Not authorized" in text
    assert "su****" in text and "supersecret-pw" not in text
    assert "RequestedRecipe" in text and "ScoreX1000" in text
    at.selectbox(key="line-recipe").select("cell-b").run()
    next(b for b in at.button if b.label == "Activate recipe").click().run()
    assert not at.exception
    assert [r.name for r in list_recipes(studio, "line1") if r.active] == ["cell-b"]
    form_name = next(t for t in at.text_input if t.label == "Product name")
    form_name.input("cell-c")
    next(m for m in at.multiselect if m.label == "Tools").select("cells")
    next(b for b in at.button if b.label == "Create recipe").click().run()
    assert not at.exception and [r.number for r in list_recipes(studio, "line1") if r.name == "cell-c"] == [3]
