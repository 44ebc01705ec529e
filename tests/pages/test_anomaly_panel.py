"""The anomaly parts of the pages (AppTest, real models on the committed ELPV cells): the Train page's
anomaly section (train button, goods' score chart with the threshold, advice, policy) and the Live
page's anomaly map overlay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.audit import SYSTEM, audit_log
from core.config import Settings
from core.images import decode_image, encode_png
from core.inspect.decision import Verdict
from core.inspect.models import load_tool_models
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import create_tool, get_tool
from core.training import train
from tests.inspections import record
from tests.pages.test_pages import (  # noqa: F401 - fixtures and helpers of the page tests
    CLASSES,
    DEFECTIVE_CELLS,
    ELPV,
    TOOL,
    button,
    cell,
    metrics,
    open_page,
    studio_copy,
    texts,
)

TRAIN_LABEL = "Train anomaly model (good images only)"


@pytest.fixture(scope="module")
def both_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the 40 committed cells, a classifier and an anomaly model."""
    data_dir = tmp_path_factory.mktemp("both") / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, CLASSES, actor=SYSTEM)
    import_path(studio, TOOL, ELPV, actor=SYSTEM)
    train(studio, TOOL, actor=SYSTEM)
    train(studio, TOOL, method="anomaly", actor=SYSTEM)
    studio.engine.dispose()
    return data_dir


@pytest.fixture
def both_studio(both_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    studio = studio_copy(both_template, tmp_path, monkeypatch)
    yield studio
    studio.engine.dispose()


def test_train_page_shows_the_goods_scores_threshold_and_advice(both_studio: Studio) -> None:
    at = open_page("train")
    assert "Anomaly model (good images only)" in texts(at.subheader)
    version = get_tool(both_studio, TOOL).active_versions["anomaly"]
    assert any(c.value.startswith(f"Active anomaly model v{version}: 20 good images") for c in at.caption)
    assert any("Add about 30 more good images" in w for w in texts(at.warning))
    charts = at.get("vega_lite_chart")
    assert any('"threshold"' in chart.proto.spec for chart in charts)  # the goods' scores with the threshold
    at.selectbox(key="anomaly-policy").set_value("anomaly only").run()
    assert not at.exception
    assert get_tool(both_studio, TOOL).settings["policy"] == "anomaly only"
    assert get_tool(both_studio, TOOL).settings["thresholds"] == {}  # the untouched threshold stays calibrated
    at.slider(key="anomaly-threshold").set_value(0.35).run()
    assert get_tool(both_studio, TOOL).settings["thresholds"] == {"anomaly": 0.35}
    trail = [(e.action, e.actor) for e in audit_log(both_studio, TOOL)]
    assert trail[:4] == [("settings", "operator"), ("sign", "operator")] * 2  # each change e-signed first


def test_train_page_says_what_tiling_will_cost_before_training(both_studio: Studio) -> None:
    at = open_page("train")
    assert not any(c.value.startswith("Tiling") for c in at.caption)  # tiling off
    change_settings(both_studio, TOOL, SYSTEM, {"tiling.mode": "fixed", "tiling.tile_px": 150, "tiling.overlap": 0})
    at = open_page("train")
    said = [c.value for c in at.caption if c.value.startswith("Tiling (fixed): 4 tiles of 150 px on a 300 x 300 px")]
    assert len(said) == 2 and all(" MB and " in c and " s to score a part" in c for c in said)  # classifier, anomaly


def test_train_page_opens_with_an_anomaly_threshold_set_elsewhere(both_studio: Studio) -> None:
    change_settings(both_studio, TOOL, SYSTEM, {"threshold.anomaly": 0.99})  # e.g. `tools set` or the Live page
    at = open_page("train")
    assert at.slider(key="anomaly-threshold").value == pytest.approx(0.99)


def test_train_anomaly_button_trains_on_goods_only_and_says_so(both_studio: Studio) -> None:
    before = get_tool(both_studio, TOOL).active_versions["anomaly"]
    at = open_page("train")
    button(at, TRAIN_LABEL).click().run(timeout=900)  # a real training, on a shared 2-core machine
    assert not at.exception
    after = get_tool(both_studio, TOOL)
    assert after.active_versions.get("anomaly") not in (None, before) and "classifier" in after.active_versions
    assert any(s.value.startswith(f"Anomaly model v{after.active_versions['anomaly']} trained on 20 good images")
               for s in at.success)
    assert ("20 image(s) not labelled 'good' were ignored: an anomaly model learns from good images only"
            in texts(at.info))


def test_live_overlays_the_anomaly_map_and_shows_both_opinions(both_studio: Studio) -> None:
    at = open_page("live", tab="Photo")
    at.file_uploader[0].set_value(cell(DEFECTIVE_CELLS[0])).run()
    assert not at.exception
    assert "Defect score" in metrics(at)  # the combined verdict's score; each model's is in the caption
    captions = [caption for image in at.get("image") for caption in image.captions]
    assert any(c.endswith("defect map (red = unlike the good parts)") for c in captions), captions
    served = {m.method: m for m in load_tool_models(both_studio, TOOL).models}
    assert set(served) == {"classifier", "anomaly"}
    (opinions,) = [c.value for c in at.caption if "classifier v" in c.value]
    for method, model in served.items():  # each model's verdict, score and its own threshold
        assert f"{method} v{model.version_id}: **" in opinions, opinions
        assert f"threshold {model.threshold:.2f})" in opinions, opinions
    assert "degraded" not in opinions  # both models decided


def test_the_review_card_shows_the_defect_map_of_an_anomaly_model_inspection(both_studio: Studio) -> None:
    anomaly = get_tool(both_studio, TOOL).active_versions["anomaly"]
    png = encode_png(decode_image(DEFECTIVE_CELLS[9].read_bytes()).rgb)
    record(both_studio, TOOL, Verdict("review", "anomaly", 0.5), None, png, version_id=anomaly,
           opinions={"anomaly": Verdict("review", "anomaly", 0.5)})
    at = open_page("review")
    plain = at.image[0].proto.imgs[0].url
    at.toggle(key="heatmap").set_value(True).run()
    assert not at.exception and len(at.image) == 1
    assert at.image[0].proto.imgs[0].url != plain  # the anomaly model's map over the kept image
    assert not [c for c in texts(at.caption) if c.startswith("No defect map")]
