"""The frame processor on plain 640 x 480 frames of real ELPV cells, with the really trained model."""

from __future__ import annotations

import queue
from dataclasses import replace

import numpy as np
import pytest

from core.audit import SYSTEM
from core.errors import NotFoundError, StudioError
from core.inspect import models as loading
from core.inspect.models import LoadedModel, ToolModels, load_tool_models
from core.live.demo import HEIGHT, WIDTH, demo_frames, demo_images, place
from core.live.overlay import COLOURS
from core.live.processor import STAGES, FrameProcessor, FrameReport
from core.live.settings import LiveSettings
from core.live.tool import live_config
from core.live.writer import InspectionWriter
from core.roi import roi_pixels
from core.studio import Studio
from core.tool_settings import change_settings
from core.tools import create_tool, set_roi
from models.base import Judgement
from models.registration import PartLocator, cut_at, map_onto_region
from storage.tables import Inspection
from tests.core.live.conftest import TOOL, cells

ROI = [0.2, 0.1, 0.8, 0.9]


def banner_colour(frame: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in frame[5, 5])


def inspections(studio: Studio) -> list[Inspection]:
    with studio.transaction() as session:
        return list(session.query(Inspection).order_by(Inspection.id))


@pytest.fixture
def tool(trained: Studio) -> ToolModels:
    set_roi(trained, TOOL, ROI, SYSTEM)
    return load_tool_models(trained, TOOL)


def test_loading_a_tool_says_what_is_wrong(trained: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    create_tool(trained, "untrained", "good,crack", actor=SYSTEM)
    with pytest.raises(NotFoundError, match="no trained model yet"):
        load_tool_models(trained, "untrained")
    live = load_tool_models(trained, TOOL)
    assert live.roi is None and live.models[0].version_id > 0
    for path in (trained.settings.models_dir).rglob("weights.safetensors"):
        path.unlink()
    monkeypatch.setattr(loading, "CACHE", loading.ModelCache())  # a fresh process: nothing loaded yet
    with pytest.raises(StudioError, match="cannot be loaded"):
        load_tool_models(trained, TOOL)


def test_verdicts_overlay_and_stage_timings(trained: Studio, tool: ToolModels) -> None:
    settings = LiveSettings()
    settings.update(smoothing=1)
    processor = FrameProcessor([tool], settings)
    good, bad = place(cells("good")[0]), place(cells("defective")[0])

    out = processor.process(bad)
    report = processor.last_report
    assert out.shape == bad.shape and out.dtype == np.uint8
    assert not np.array_equal(out, bad) and np.array_equal(bad, place(cells("defective")[0]))  # input untouched
    assert report.decision == "fail" and report.tools[0].label == "defective"
    assert banner_colour(out) == COLOURS["fail"]
    x0, y0, x1, y1 = roi_pixels(ROI, WIDTH, HEIGHT)
    assert tuple(int(v) for v in out[(y0 + y1) // 2, x0 + 1]) == COLOURS["fail"]  # the ROI box
    assert set(report.stages_ms) == set(STAGES) and report.stages_ms["model"] > 0
    assert report.latency_ms >= sum(report.stages_ms.values()) * 0.99

    out = processor.process(good)
    assert processor.last_report.decision == "pass" and banner_colour(out) == COLOURS["pass"]
    assert processor.last_report.fps > 0


def test_heatmap_on_off_and_opacity_change_only_the_roi(tool: ToolModels) -> None:
    frame = place(cells("defective")[1])
    settings = LiveSettings()
    processor = FrameProcessor([tool], settings)
    x0, y0, x1, y1 = roi_pixels(ROI, WIDTH, HEIGHT)
    inner = (slice(y0 + 40, y1 - 10), slice(x0 + 10, x1 - 10))  # below the tool label
    settings.update(heatmap=False)
    plain = processor.process(frame)
    assert np.array_equal(plain[inner], frame[inner])  # no heatmap: the part is shown as it is
    settings.update(heatmap=True, heatmap_opacity=0.3)
    light = processor.process(frame)
    settings.update(heatmap_opacity=0.8)
    strong = processor.process(frame)
    difference = lambda a: np.abs(a[inner].astype(int) - frame[inner].astype(int)).mean()  # noqa: E731
    assert 0 < difference(light) < difference(strong)
    outside = (slice(y0 + 40, y1 - 10), slice(0, x0 - 5))  # below the banner, left of the ROI
    assert np.array_equal(strong[outside], frame[outside])


def test_threshold_switched_live_changes_the_verdict(tool: ToolModels) -> None:
    settings = LiveSettings()
    settings.update(smoothing=1, review_bands={"classifier": 0.0})
    processor = FrameProcessor([tool], settings)
    frame = place(cells("good")[2])
    processor.process(frame)
    score = processor.last_report.tools[0].score
    assert processor.last_report.decision == "pass"
    settings.update(thresholds={"classifier": max(0.0, score - 0.001)})
    processor.process(frame)
    assert processor.last_report.decision == "fail"


def test_smoothing_is_the_moving_average_of_the_raw_scores(tool: ToolModels) -> None:
    settings = LiveSettings()
    settings.update(smoothing=3)
    processor = FrameProcessor([tool], settings)
    still = place(cells("defective")[2])
    raw, smoothed = [], []
    for shift in (0, 1, 0, 1, 0):  # the same part, tiny shifts: no reset of the window
        processor.process(np.roll(still, shift, axis=1))
        raw.append(processor.last_report.tools[0].raw_score)
        smoothed.append(processor.last_report.tools[0].score)
    assert smoothed[-1] == pytest.approx(np.mean(raw[-3:]), abs=1e-6)
    assert smoothed[1] == pytest.approx(np.mean(raw[:2]), abs=1e-6)


def test_tta_averages_the_mirrored_crop(tool: ToolModels) -> None:
    crop = cells("defective")[3]
    model = tool.models[0].model
    plain, = model.judge([crop])
    mirrored, = model.judge([np.ascontiguousarray(crop[:, ::-1])])
    both, = model.judge([crop], tta=True)
    assert both.score == pytest.approx((plain.score + mirrored.score) / 2, abs=1e-5)
    assert both.map.shape == plain.map.shape
    assert np.allclose(both.map, (plain.map + mirrored.map[:, ::-1]) / 2, atol=1e-5)


class DarknessModel:
    """A second model through the method contract (as any registered method plugs in): the share of
    dark pixels as its score, and the dark pixels as its map; it names no defect class."""

    method, format_version, learns_from = "anomaly", 1, "good"

    def judge(self, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        dark = [(image.mean(axis=2) < 60).astype(np.float32) for image in images]
        return [Judgement(float(d.mean()), map=d[::8, ::8]) for d in dark]


def test_a_second_model_plugs_in_and_disagreement_goes_to_review(trained: Studio, tool: ToolModels) -> None:
    settings = LiveSettings()
    settings.update(smoothing=1)
    writer = InspectionWriter(trained)
    tool = replace(tool, models=(*tool.models, LoadedModel("anomaly", tool.models[0].version_id, DarknessModel(),
                                                           0.5, 0.1)))
    processor = FrameProcessor([tool], settings, writer)
    frame = place(cells("good")[3])
    _, y0, _, y1 = roi_pixels(ROI, WIDTH, HEIGHT)
    frame[y0 + (y1 - y0) // 5:, :] = 0  # 80 % of the ROI dark: the second model says fail
    processor.process(frame)
    result = processor.last_report.tools[0]
    assert result.opinions["anomaly"]["decision"] == "fail" and result.opinions["anomaly"]["label"] == "anomaly"
    if result.opinions["classifier"]["decision"] != "fail":
        assert result.decision == "review"
    writer.close()
    (row,) = inspections(trained)
    assert row.anomaly_score == pytest.approx(result.opinions["anomaly"]["score"], abs=1e-5)
    assert set(row.opinions) == {"classifier", "anomaly"}


class BrokenModel(DarknessModel):
    def __init__(self, score: float | None = None) -> None:
        self.score = score

    def judge(self, images: list[np.ndarray], *, tta: bool = False) -> list[Judgement]:
        if self.score is None:
            raise RuntimeError("the GPU fell over")
        return [Judgement(self.score) for _ in images]


@pytest.mark.parametrize("broken", [BrokenModel(float("nan")), BrokenModel(float("inf")), BrokenModel()])
def test_a_model_that_gives_no_finite_score_sends_the_part_to_review(trained: Studio, tool: ToolModels,
                                                                     broken: BrokenModel) -> None:
    settings = LiveSettings()
    settings.update(smoothing=1, trigger="manual")
    writer = InspectionWriter(trained)
    for models in ((LoadedModel("anomaly", tool.models[0].version_id, broken, 0.5, 0.1),),
                   (*tool.models, LoadedModel("anomaly", tool.models[0].version_id, broken, 0.5, 0.1))):
        processor = FrameProcessor([replace(tool, models=models)], settings, writer)
        settings.request_inspection()
        processor.process(place(cells("good")[0]))
        result = processor.last_report.tools[0]
        assert result.decision == "review"  # fail closed, never a pass
        assert "failed" in result.opinions["anomaly"]["error"]
    writer.close()
    rows = inspections(trained)
    assert [r.decision for r in rows] == ["review", "review"] and all(r.needs_review for r in rows)


def test_two_tools_on_one_frame(trained: Studio) -> None:
    create_tool(trained, "left-half", "good,defective", actor=SYSTEM)
    from core.samples import import_path
    from core.training import train
    from tests.core.live.conftest import ELPV
    import_path(trained, "left-half", ELPV, actor=SYSTEM)
    train(trained, "left-half", actor=SYSTEM)
    set_roi(trained, TOOL, [0.5, 0.1, 1.0, 0.9], SYSTEM)  # each ROI holds exactly one whole cell
    set_roi(trained, "left-half", [0.0, 0.1, 0.5, 0.9], SYSTEM)
    tools = [load_tool_models(trained, "left-half"), load_tool_models(trained, TOOL)]
    settings = LiveSettings(live_config(trained, TOOL))  # the calibrated threshold and band
    settings.update(smoothing=1)
    processor = FrameProcessor(tools, settings)
    halves = [place(cells("good")[4], width=320, height=400), place(cells("defective")[9], width=320, height=400)]
    frame = np.concatenate(halves, axis=1)  # 640 x 400: a good cell on the left, a clearly defective one on the right
    out = processor.process(frame)
    by_tool = {r.tool: r.decision for r in processor.last_report.tools}
    assert by_tool == {"left-half": "pass", TOOL: "fail"}
    assert processor.last_report.decision == "fail" and banner_colour(out) == COLOURS["fail"]


def test_continuous_stream_records_one_inspection_per_part(trained: Studio, tool: ToolModels) -> None:
    writer = InspectionWriter(trained)
    change_settings(trained, TOOL, SYSTEM, {"keep_pass_share": 0.0})
    tool = load_tool_models(trained, TOOL)
    settings = LiveSettings(live_config(trained, TOOL))  # the calibrated threshold and band
    settings.update(smoothing=3)
    results: queue.Queue[FrameReport] = queue.Queue(maxsize=2)
    processor = FrameProcessor([tool], settings, writer, results, station="line-1")
    parts = [cells("good")[5], cells("defective")[5], cells("good")[6], cells("defective")[9]]  # clear cases
    expected = []
    for frame in demo_frames(parts, hold=6, slide=3, loop=False):
        processor.process(frame)
        expected += [r.decision for r in processor.last_report.tools if r.recorded]
    assert writer.close() == 0
    rows = inspections(trained)
    assert [r.decision for r in rows] == expected and len(rows) == 4
    assert [r.decision for r in rows] == ["pass", "fail", "pass", "fail"]
    assert all(r.station == "line-1" and r.model_version_id == tool.models[0].version_id for r in rows)
    assert [r.image_key is not None for r in rows] == [False, True, False, True]  # frames of fails kept
    kept = trained.images.read(rows[1].image_key)
    assert kept.startswith(b"\x89PNG")
    assert results.qsize() == 2 and results.get_nowait().index == processor.last_report.index - 1  # oldest dropped


def test_manual_trigger_and_kept_share_of_passes(trained: Studio) -> None:
    set_roi(trained, TOOL, ROI, SYSTEM)
    change_settings(trained, TOOL, SYSTEM, {"keep_pass_share": 0.5})
    tool = load_tool_models(trained, TOOL)
    trained.recorder.rng.seed(3)  # the kept share is drawn at random: a fixed seed for the test
    writer = InspectionWriter(trained)
    settings = LiveSettings()
    settings.update(trigger="manual", smoothing=1)
    processor = FrameProcessor([tool], settings, writer)
    frame = place(cells("good")[7])
    for _ in range(5):
        processor.process(frame)
    assert writer.status().waiting == 0 and inspections(trained) == []
    for _ in range(4):
        settings.request_inspection()
        processor.process(frame)
        processor.process(frame)  # one request, one inspection
    writer.close()
    rows = inspections(trained)
    assert [r.decision for r in rows] == ["pass"] * 4
    kept = [r.image_key is not None for r in rows]
    assert 0 < sum(kept) < 4  # a share of the passes is kept (the rest only counted)


def test_demo_stream_plays_the_tool_images(trained: Studio) -> None:
    images = demo_images(trained, TOOL, limit=6)
    assert len(images) == 6
    frames = list(demo_frames(images[:2], hold=4, slide=2, loop=False))
    assert len(frames) == 12 and all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)
    assert not np.array_equal(frames[0], frames[1])  # sliding in
    assert np.array_equal(frames[2], frames[5])  # then still


def test_position_correction_judges_the_part_where_it_lies_and_lays_its_map_there(tool: ToolModels) -> None:
    """A tool trained with position correction: the live path cuts the region where the part moved to (as
    ``inspect`` does) and draws the crop's heatmap back where that part lies in the drawn region."""
    box = roi_pixels(ROI, WIDTH, HEIGHT)
    goods = [place(cell)[box[1]:box[3], box[0]:box[2]] for cell in cells("good")[:6]]
    locator = PartLocator.from_goods(goods)
    corrected = replace(tool, models=tuple(replace(m, locator=locator) for m in tool.models))
    frame = place(cells("defective")[2], offset_x=12)  # the part 12 px right of where the ROI was drawn
    processor = FrameProcessor([corrected], LiveSettings())
    processor.process(frame)
    inspection = processor.last_report.tools[0].inspection
    placed = locator.place(frame, box)
    assert placed is not None and placed[0, 2] - box[0] == pytest.approx(12, abs=3)
    assert np.array_equal(inspection.crop, cut_at(frame, box, placed))
    (mark,) = processor._marks
    assert np.array_equal(mark.heatmap, map_onto_region(inspection.map, box, placed))
