"""The anomaly model in the live pipeline: the tool's policy picks the models, the anomaly opinion
decides with its own calibrated threshold, disagreement goes to review, degraded mode is recorded."""

from __future__ import annotations

import numpy as np
import pytest

from core.audit import SYSTEM
from core.inspect.models import load_tool_models
from core.live.demo import HEIGHT, WIDTH, place
from core.live.processor import FrameProcessor
from core.live.settings import LiveSettings
from core.live.writer import InspectionWriter
from core.roi import roi_pixels
from core.studio import Studio
from core.tool_settings import change_settings
from core.tools import set_roi
from storage.tables import Inspection
from tests.core.live.conftest import TOOL, cells

ROI = [0.2, 0.1, 0.8, 0.9]


def blotched(cell: np.ndarray) -> np.ndarray:
    """A good cell with a dark blotch drawn on it: a defect the good cells never showed."""
    frame = place(cell)
    x0, y0, x1, y1 = roi_pixels(ROI, WIDTH, HEIGHT)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    frame[cy - 30:cy + 30, cx - 30:cx + 30] = 0
    return frame


def test_policy_picks_the_models_and_says_when_degraded(trained: Studio, both: Studio) -> None:
    alone = load_tool_models(trained, TOOL)  # cross-check by default, no anomaly model trained
    assert [m.method for m in alone.models] == ["classifier"] and alone.degraded
    change_settings(trained, TOOL, SYSTEM, {"policy": "classifier only"})
    assert not load_tool_models(trained, TOOL).degraded
    change_settings(trained, TOOL, SYSTEM, {"policy": "anomaly only"})  # not trained: the classifier decides
    fallback = load_tool_models(trained, TOOL)
    assert [m.method for m in fallback.models] == ["classifier"] and fallback.degraded
    assert "no trained anomaly model" in fallback.errors["anomaly"]

    paired = load_tool_models(both, TOOL)
    assert [m.method for m in paired.models] == ["classifier", "anomaly"] and not paired.degraded
    change_settings(both, TOOL, SYSTEM, {"policy": "anomaly only"})
    only = load_tool_models(both, TOOL)
    assert [m.method for m in only.models] == ["anomaly"] and not only.degraded
    assert only.models[0].version_id != paired.models[0].version_id  # the anomaly model's version decides


def test_anomaly_opinion_scores_a_blotch_higher_and_maps_it(both: Studio) -> None:
    set_roi(both, TOOL, ROI, SYSTEM)
    tool = load_tool_models(both, TOOL)
    settings = LiveSettings()
    settings.update(smoothing=1)
    processor = FrameProcessor([tool], settings)
    good = cells("good")[0]
    processor.process(place(good))
    clean = processor.last_report.tools[0].opinions["anomaly"]["score"]
    processor.process(blotched(good))
    result = processor.last_report.tools[0]
    assert result.opinions["anomaly"]["score"] > clean + 0.2
    assert result.opinions["anomaly"]["decision"] == "fail"
    if result.opinions["classifier"]["decision"] == "pass":
        assert result.decision == "review"  # the two models disagree: a person decides
    anomaly = tool.models[1].model
    (opinion,) = anomaly.judge([np.ascontiguousarray(blotched(good)[96:384, 128:512])])
    heat = opinion.map
    assert heat.shape == (288, 384) and 0.0 <= heat.min() and heat.max() <= 1.0
    y, x = np.unravel_index(int(heat.argmax()), heat.shape)
    assert abs(y - 144) < 60 and abs(x - 192) < 60  # the map peaks on the blotch


def test_degraded_inspections_are_marked_and_keep_both_opinions(trained: Studio, both: Studio) -> None:
    for studio, degraded in ((trained, True), (both, False)):
        set_roi(studio, TOOL, ROI, SYSTEM)
        writer = InspectionWriter(studio)
        settings = LiveSettings()
        settings.update(smoothing=1, trigger="manual")
        processor = FrameProcessor([load_tool_models(studio, TOOL)], settings, writer)
        settings.request_inspection()
        processor.process(blotched(cells("good")[1]))
        writer.close()
        with studio.transaction() as session:
            (row,) = session.query(Inspection).all()
            assert row.degraded is degraded
            if degraded:
                assert row.anomaly_score is None
            else:
                assert row.anomaly_score == pytest.approx(processor.last_report.tools[0].opinions["anomaly"]["score"],
                                                          abs=1e-5)
                assert set(row.opinions) == {"classifier", "anomaly"}
