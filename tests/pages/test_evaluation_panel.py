"""The Models page's evaluation panel (AppTest, a real classifier on real cells): a version evaluated on
the held-out cells shows the three rates, the ROC and precision-recall charts and the confusion."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.audit import SYSTEM
from core.samples import import_path
from core.tools import create_tool
from core.training import train
from storage.tables import Sample
from tests.pages.test_pages import ELPV, TOOL, _use, button, metrics, open_page


def test_evaluate_a_version_on_held_out_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = _use(tmp_path / "data", monkeypatch)
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    for label, cells in (("good", sorted((ELPV / "good").glob("*.png"))[:8]),
                         ("defective", sorted((ELPV / "defective").glob("*.png"))[:8])):
        for path in cells:
            import_path(studio, TOOL, path, label=label, actor=SYSTEM)
    with studio.transaction() as session:  # 2 + 2 cells held out
        held = [s.id for label in ("good", "defective") for s in
                session.scalars(select(Sample).where(Sample.label == label).order_by(Sample.id).limit(2))]
        session.execute(update(Sample).where(Sample.id.in_(held)).values(split="held_out"))
    version = train(studio, TOOL, profile="fast", actor=SYSTEM).version_id
    studio.engine.dispose()

    at = open_page("models")
    assert [b.label for b in at.button if b.label.startswith("Add the")] == []  # no anomaly model to extend
    button(at, f"Evaluate v{version}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert {"Escapes", "False rejects", "To review"} <= set(metrics(at))
    assert any("ROC AUC" in c.value for c in at.caption)
    assert any("escape rate unknown" in i.value.lower() for i in at.info)  # nothing reviewed on the line yet
