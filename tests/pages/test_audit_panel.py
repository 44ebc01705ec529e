"""The Models page's audit trail under AppTest: filters narrow the rows, "Verify chain" says intact and then names
an edited row, the CSV download holds the filtered rows, and user text is never rendered as HTML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.audit import SYSTEM, Actor, log
from core.auth.roles import Role
from core.config import Settings
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import create_tool
from core.training import train
from tests.pages.test_pages import ELPV, button, open_page, studio_copy

TOOL = "cells"
HTML = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tool with a kNN model (quick to train) and audit rows by two people, one name carrying HTML."""
    data_dir = tmp_path_factory.mktemp("audit-page") / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    import_path(studio, TOOL, ELPV, actor=SYSTEM)
    train(studio, TOOL, method="knn", profile="fast", actor=SYSTEM)
    change_settings(studio, TOOL, Actor("ana", "pc-1", Role.ENGINEER, "page"), {"audit_share": 0.05})
    with studio.transaction() as session:
        log(session, Actor(HTML, "pc-2"), "queue", "inspection 1", None)
    studio.engine.dispose()
    return data_dir


@pytest.fixture
def audited(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    studio = studio_copy(template, tmp_path, monkeypatch)
    yield studio
    studio.engine.dispose()


def test_the_trail_filters_verifies_and_exports(audited: Studio) -> None:
    at = open_page("models")
    trail = at.dataframe[-1].value
    assert {"ana"} <= set(trail["who"]) and "settings" in set(trail["action"])

    at.selectbox(key="audit-tool").set_value("all tools").run()
    assert HTML in set(at.dataframe[-1].value["who"])  # a cell of a data frame: plain text
    assert all(HTML not in m.value for m in at.markdown)  # never rendered as Markdown / HTML

    at.selectbox(key="audit-who").set_value("ana").run()
    assert set(at.dataframe[-1].value["who"]) == {"ana"}
    [csv] = [b for b in at.get("download_button") if b.proto.label == "Export CSV"]
    assert csv.proto.label == "Export CSV"

    button(at, "Verify chain").click().run()
    assert any("intact" in s.value for s in at.success) and not at.error

    with audited.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        connection.execute(text("UPDATE audit_log SET actor = 'eve' WHERE action = 'settings'"))
    button(at, "Verify chain").click().run()
    assert any("TAMPERED" in e.value for e in at.error)
    assert any(t.value.startswith("edited: row id") for t in at.text)
