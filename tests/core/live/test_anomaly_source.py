"""The anomaly model in the live pipeline: the tool's policy picks the models, the anomaly opinion
decides with its own calibrated threshold, disagreement goes to review, degraded mode is recorded."""

from __future__ import annotations

import numpy as np
import pytest

from core.live.demo import HEIGHT, WIDTH, place
from core.live.processor import FrameProcessor
from core.live.settings import LiveSettings
from core.live.tool import load_live_tool
from core.live.writer import InspectionWriter
from core.roi import roi_pixels
from core.studio import Studio
from core.tools import set_roi, update_settings
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
    alone = load_live_tool(trained, TOOL)  # cross-check by default, no anomaly model trained
    assert [s.name for s in alone.sources] == ["classifier"] and alone.degraded
    update_settings(trained, TOOL, policy="classifier only")
    assert not load_live_tool(trained, TOOL).degraded

    paired = load_live_tool(both, TOOL)
    assert [s.name for s in paired.sources] == ["classifier", "anomaly"] and not paired.degraded
    update_settings(both, TOOL, policy="anomaly only")
    only = load_live_tool(both, TOOL)
    assert [s.name for s in only.sources] == ["anomaly"] and not only.degraded
    assert only.model_version_id != paired.model_version_id  # the anomaly model's version decides


def test_anomaly_opinion_scores_a_blotch_higher_and_maps_it(both: Studio) -> None:
    set_roi(both, TOOL, ROI)
    tool = load_live_tool(both, TOOL)
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
    anomaly = tool.sources[1]
    (opinion,) = anomaly.opinions([np.ascontiguousarray(blotched(good)[96:384, 128:512])], tta=False)
    heat = opinion.heatmap
    assert heat.shape == (288, 384) and 0.0 <= heat.min() and heat.max() <= 1.0
    y, x = np.unravel_index(int(heat.argmax()), heat.shape)
    assert abs(y - 144) < 60 and abs(x - 192) < 60  # the map peaks on the blotch


def test_degraded_inspections_are_marked_and_keep_both_opinions(trained: Studio, both: Studio) -> None:
    for studio, degraded in ((trained, True), (both, False)):
        set_roi(studio, TOOL, ROI)
        writer = InspectionWriter(studio)
        settings = LiveSettings()
        settings.update(smoothing=1, trigger="manual")
        processor = FrameProcessor([load_live_tool(studio, TOOL)], settings, writer)
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
