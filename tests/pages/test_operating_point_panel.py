"""The operating-point panel (AppTest, a real classifier on committed ELPV cells): the trade-off and
sentence on the Models and Train pages, the review slider moving along it, Apply audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.audit import SYSTEM, audit_log
from core.config import Settings
from core.operating_point import service
from core.operating_point.choose import Targets
from core.operating_point.point import OperatingPoint
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tool_settings import change_settings, tool_settings
from core.tools import create_tool
from core.training import train
from tests.pages.test_pages import (  # noqa: F401 - fixtures and helpers of the page tests
    CLASSES,
    ELPV,
    TOOL,
    open_page,
    studio_copy,
    texts,
)


@pytest.fixture(scope="module")
def classifier_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with 10 + 10 committed cells and a classifier (fast profile)."""
    data_dir = tmp_path_factory.mktemp("oppoint-page") / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, CLASSES, actor=SYSTEM)
    for label in ("good", "defective"):
        for path in sorted((ELPV / label).glob("*.png"))[:10]:
            import_path(studio, TOOL, path, label=label, actor=SYSTEM)
    train(studio, TOOL, profile="fast", actor=SYSTEM)
    studio.engine.dispose()
    return data_dir


@pytest.fixture
def trained(classifier_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    studio = studio_copy(classifier_template, tmp_path, monkeypatch)
    yield studio
    studio.engine.dispose()


def test_models_page_walks_the_trade_off_and_applies_it_audited(trained: Studio) -> None:
    at = open_page("models")
    assert "Operating point" in texts(at.subheader)
    assert any("of 100 good parts decided automatically" in m.value for m in at.markdown)
    reviews = {}
    for share in (0.0, 0.3):
        at.slider(key="op-review").set_value(share).run()
        assert not at.exception
        reviews[share] = next(m.value for m in at.markdown if "**Review share**" in m.value).split(": ")[-1]
    assert reviews[0.0] == "0%" and reviews[0.3] != "0%"
    assert at.get("vega_lite_chart")
    at.button(key="op-apply").click().run()
    assert not at.exception
    point = tool_settings(trained, TOOL).operating_point
    assert point is not None and point.targets.max_review == pytest.approx(0.3)
    assert (audit_log(trained, TOOL)[0].action, audit_log(trained, TOOL)[0].actor) == ("settings", "operator")
    assert any(c.value.startswith("Applied for versions") for c in at.caption)
    at.button(key="op-clear").click().run()
    assert tool_settings(trained, TOOL).operating_point is None


def test_train_page_shows_the_panel(trained: Studio) -> None:
    at = open_page("train")
    assert "Operating point" in texts(at.subheader)
    assert any("**Review share**" in m.value for m in at.markdown)


def test_a_point_whose_adaptation_was_refused_says_so(trained: Studio) -> None:
    """The rule applied and, when the cross-check refused the adaptation, why (the point is the
    training images')."""
    choice, data = service.propose(trained, TOOL, Targets(0.2))
    stored = OperatingPoint.from_choice(choice, data.versions).as_json()
    refused = "the mixture does not describe these parts: 58% against 45%"
    stored["rule"] = "training images only (adaptation refused, see adapted.refused): " + stored["rule"]
    stored["promised"]["adapted"] = {"delta": -0.4, "defect_share": 0.58, "n_new": 200, "used": False,
                                     "refused": refused}
    change_settings(trained, TOOL, SYSTEM, {"operating_point": OperatingPoint.from_json(stored)})
    at = open_page("models")
    assert not at.exception
    assert any("Rule: training images only (adaptation refused" in c.value for c in at.caption)
    assert any(refused in w.value and "training images' alone" in w.value for w in at.warning)
