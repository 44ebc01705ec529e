"""The Models page's bundle panel under AppTest: a fresh studio (no tool yet) imports an uploaded bundle as a
new tool; a refused bundle is an error message and nothing is imported; the selected tool's bundle downloads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.audit import SYSTEM
from core.bundle.export import export_bundle
from core.config import Settings
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tools import list_tools
from core.training import train
from tests.pages.test_pages import (  # noqa: F401  (fixtures)
    ELPV,
    button,
    empty_studio,
    open_page,
)

TOOL = "cells"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bundle of a tool with a kNN model (quick to train) on the committed cells."""
    from core.tools import create_tool

    data_dir = tmp_path_factory.mktemp("bundle-page") / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    import_path(studio, TOOL, ELPV, actor=SYSTEM)
    train(studio, TOOL, method="knn", profile="fast", actor=SYSTEM)
    path = export_bundle(studio, TOOL, data_dir.parent / "cells.zip", actor=SYSTEM).path
    studio.engine.dispose()
    return path.read_bytes()


@pytest.fixture
def studio_here(empty_studio: Studio) -> Iterator[Studio]:  # noqa: F811
    yield empty_studio


def test_a_fresh_station_imports_a_bundle_then_exports_it(studio_here: Studio, bundle: bytes) -> None:
    at = open_page("models")
    at.file_uploader(key="bundle-upload").set_value(("cells.zip", bundle[:-100], "application/zip")).run()
    button(at, "Import").click().run()
    assert any("damaged" in e.value for e in at.error) and list_tools(studio_here) == []

    at.file_uploader(key="bundle-upload").set_value(("cells.zip", bundle, "application/zip")).run()
    at.text_input(key="bundle-as").input("cells-2").run()
    button(at, "Import").click().run()
    assert not at.exception and not at.error
    assert any("Imported tool 'cells-2'" in s.value for s in at.success)
    [tool] = list_tools(studio_here)
    assert (tool.name, list(tool.active_versions)) == ("cells-2", ["knn"])

    at.run()  # the sidebar now lists the tool and selects it
    button(at, "Prepare the bundle of cells-2").click().run()
    assert not at.exception and not at.error
    assert [b for b in at.get("download_button") if "cells-2.zip" in str(b.proto)]
