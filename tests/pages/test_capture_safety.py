"""Issue 16, item 4 on the Capture page: an encrypted member, an unsupported compression method and a
damaged .zip among the uploads are reported one by one, and the report of what was imported stays."""

from __future__ import annotations

import zipfile

from core.audit import SYSTEM
from core.samples import class_counts
from core.studio import Studio
from core.tools import create_tool
from tests.core.test_store_safety import _patch_member
from tests.pages.test_pages import (  # noqa: F401 - fixtures used by name
    CLASSES,
    GOOD_CELLS,
    TOOL,
    button,
    empty_studio,
    open_page,
    texts,
)


def test_unreadable_members_and_a_damaged_zip_keep_the_report(empty_studio: Studio, tmp_path) -> None:  # noqa: ANN001
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    archive = tmp_path / "cells.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in GOOD_CELLS[:4]:
            out.write(path, f"good/{path.name}")
    _patch_member(archive, f"good/{GOOD_CELLS[1].name}", flag_bits=0x1)  # encrypted
    _patch_member(archive, f"good/{GOOD_CELLS[2].name}", method=99)  # a compression Python cannot read
    at = open_page("capture")
    at.file_uploader[0].set_value([("cells.zip", archive.read_bytes(), "application/zip"),
                                   ("broken.zip", b"PK\x03\x04 not really a zip", "application/zip")])
    button(at, "Add to dataset").click().run()
    assert not at.exception
    assert texts(at.success) == ["Added 2 image(s) as 'good'"]
    errors = texts(at.error)
    assert any("encrypted" in e for e in errors) and any("unsupported zip compression" in e for e in errors)
    assert any(e.startswith("broken.zip is damaged") for e in errors)
    assert class_counts(empty_studio, TOOL)["good"] == 2
