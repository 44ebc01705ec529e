"""The Models page's robustness section under AppTest: it shows the tool's settings and saves a change
(audited) that every inspection then uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.audit import SYSTEM, audit_log
from core.config import Settings
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tool_settings import tool_settings
from core.tools import create_tool
from core.training import train
from tests.pages.test_pages import ELPV, button, open_page, studio_copy

TOOL = "cells"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tool with a kNN model (quick to train)."""
    data_dir = tmp_path_factory.mktemp("robustness-page") / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    import_path(studio, TOOL, ELPV, actor=SYSTEM)
    train(studio, TOOL, method="knn", profile="fast", actor=SYSTEM)
    studio.engine.dispose()
    return data_dir


@pytest.fixture
def tool_studio(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    studio = studio_copy(template, tmp_path, monkeypatch)
    yield studio
    studio.engine.dispose()


def test_the_robustness_settings_are_shown_and_saved(tool_studio: Studio) -> None:
    at = open_page("models")
    assert at.toggle(key="robust-augment").value is False and at.multiselect(key="robust-tta").value == []
    assert at.toggle(key="robust-position").value is False
    at.toggle(key="robust-augment").set_value(True)
    at.toggle(key="robust-position").set_value(True)
    at.multiselect(key="robust-tta").set_value(["mirror", "light"]).run()
    button(at, "Save robustness settings").click().run()
    assert not at.exception and not at.error
    saved = tool_settings(tool_studio, TOOL).robustness
    assert saved.augment is True and saved.tta == ("mirror", "light") and saved.position is True
    [entry] = [e for e in audit_log(tool_studio, TOOL) if e.action == "settings"]
    assert entry.details["changes"]["robustness"]["to"] == {"augment": True, "tta": ["mirror", "light"],
                                                            "position": True}
