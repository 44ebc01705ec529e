"""One engine: the same parts through ``predict`` (the CLI's and the Photo tab's function), the live
frame processor (smoothing 1, no TTA) and version comparison give the same decisions and scores, one
opinions format, the same review band and the same audit rule. Real models (a classifier and an
anomaly model trained on the committed ELPV cells), real frames (640 x 480, the cell in the ROI)."""

from __future__ import annotations

import queue

import numpy as np
import pytest
from sqlalchemy import select

from core.audit import SYSTEM
from core.images import encode_png
from core.inspect.engine import inspect
from core.inspect.models import load_tool_models
from core.inspect.roi import is_frame, region
from core.inspect.service import predict_image
from core.live.demo import HEIGHT, WIDTH, place
from core.live.processor import FrameProcessor
from core.live.settings import LiveConfig, LiveSettings
from core.live.writer import InspectionWriter
from core.model_versions import version_judge
from core.roi import roi_pixels
from core.studio import Studio
from core.tool_settings import LiveOptions, change_settings
from core.tools import set_roi
from storage.tables import Inspection
from tests.core.live.conftest import TOOL, cells

ROI = [0.2, 0.1, 0.8, 0.9]
TOLERANCE = 1e-6


def frames() -> list[np.ndarray]:
    return [place(c) for c in cells("good")[:4] + cells("defective")[:4]]


def rows(studio: Studio) -> list[Inspection]:
    with studio.transaction() as session:
        return list(session.scalars(select(Inspection).order_by(Inspection.id)))


def live_inspections(studio: Studio, images: list[np.ndarray]) -> list:
    models = load_tool_models(studio, TOOL)
    config = LiveConfig({m.method: m.threshold for m in models.models},
                        {m.method: m.review_band for m in models.models},
                        LiveOptions(smoothing=1, tta=False, trigger="manual"))
    settings = LiveSettings(config)
    writer = InspectionWriter(studio)
    processor = FrameProcessor([models], settings, writer, queue.Queue(maxsize=2))
    found = []
    for frame in images:
        settings.request_inspection()
        processor.process(frame)
        found.append(processor.last_report.tools[0].inspection)
    assert writer.flush(30.0)
    writer.close()
    return found


def test_every_path_judges_a_part_the_same_way(both: Studio) -> None:
    set_roi(both, TOOL, ROI, SYSTEM, (WIDTH, HEIGHT))
    images = frames()
    predicted = [predict_image(both, TOOL, f"frame-{i}.png", encode_png(f), actor=SYSTEM) for i, f in enumerate(images)]
    live = live_inspections(both, images)
    assert len({p.inspection.decision for p in predicted}) > 1  # the set has passes and non-passes
    for p, from_live in zip(predicted, live, strict=True):
        a, b = p.inspection, from_live
        assert a.box == b.box == roi_pixels(ROI, WIDTH, HEIGHT)
        assert a.decision == b.decision and a.verdict.label == b.verdict.label
        assert abs(a.verdict.score - b.verdict.score) <= TOLERANCE
        assert a.opinions_json().keys() == b.opinions_json().keys() == {"classifier", "anomaly"}
        for method, opinion in a.opinions_json().items():
            other = b.opinions_json()[method]
            assert opinion.keys() == other.keys() == {"version", "decision", "label", "score", "threshold"}
            assert opinion["decision"] == other["decision"] and abs(opinion["score"] - other["score"]) <= TOLERANCE
            assert a.models[method].review_band == b.models[method].review_band
    # version comparison judges a version alone on a crop: the same scores as predict under that version alone
    models = load_tool_models(both, TOOL)
    for loaded in models.models:
        change_settings(both, TOOL, SYSTEM, {"policy": f"{loaded.method} only"})
        alone = load_tool_models(both, TOOL, loaded.version_id)
        for frame in images:
            box = region(WIDTH, HEIGHT, ROI, "crop")
            crop = np.ascontiguousarray(frame[box[1]:box[3], box[0]:box[2]])
            judged = version_judge(alone)(crop)
            policy_only = predict_image(both, TOOL, "f.png", encode_png(frame), record=False,
                actor=SYSTEM).inspection.verdict
            assert judged.decision == policy_only.decision and abs(judged.score - policy_only.score) <= TOLERANCE
    # the recorded rows of both paths carry the same opinions format and decisions
    recorded = rows(both)
    assert len(recorded) == 2 * len(images)
    for first, second in zip(recorded[: len(images)], recorded[len(images):], strict=True):
        assert first.decision == second.decision and abs(first.score - second.score) <= TOLERANCE
        assert first.opinions == second.opinions
        assert first.station == second.station == both.settings.station


def test_the_audit_rule_is_the_same_on_every_path(both: Studio) -> None:
    set_roi(both, TOOL, ROI, SYSTEM, (WIDTH, HEIGHT))
    models = load_tool_models(both, TOOL)
    good = next(f for f in map(place, cells("good")) if inspect(models, f).decision == "pass")
    change_settings(both, TOOL, SYSTEM, {"audit_share": 1.0, "keep_pass_share": 0.0})
    assert predict_image(both, TOOL, "good.png", encode_png(good), actor=SYSTEM).inspection.decision == "pass"
    live_inspections(both, [good])
    predicted, live = rows(both)
    assert predicted.decision == live.decision == "pass"
    assert predicted.needs_review and live.needs_review  # every pass drawn for audit, on both paths
    assert predicted.image_key is not None and live.image_key is not None


def test_a_defect_outside_the_roi_changes_nothing(both: Studio) -> None:
    set_roi(both, TOOL, ROI, SYSTEM, (WIDTH, HEIGHT))
    models = load_tool_models(both, TOOL)
    clean = place(cells("good")[1])
    marked = clean.copy()
    x0, y0, x1, y1 = roi_pixels(ROI, WIDTH, HEIGHT)
    marked[:, : x0 - 2] = 0  # a big dark blotch left of the region of interest
    marked[:40, x1 + 2:] = 255
    assert is_frame(WIDTH, HEIGHT, ROI)
    a, b = inspect(models, clean), inspect(models, marked)
    assert a.box == b.box == (x0, y0, x1, y1)
    assert a.verdict == b.verdict
    whole = inspect(models, marked, roi="whole")
    assert whole.box == (0, 0, WIDTH, HEIGHT) and whole.verdict.score != a.verdict.score
    # an image that is a crop already (the cell alone, square) is judged whole by the auto rule
    cell = cells("good")[1]
    assert not is_frame(cell.shape[1], cell.shape[0], ROI)
    assert inspect(models, cell).box == (0, 0, cell.shape[1], cell.shape[0])


@pytest.mark.parametrize(("size", "frame", "expected"), [
    ((640, 480), (640, 480), True), ((1280, 960), (640, 480), True), ((300, 300), (640, 480), False),
    ((384, 384), (640, 480), False), ((1280, 720), (1280, 720), True), ((640, 480), (1280, 720), False)])
def test_the_roi_rule(size: tuple[int, int], frame: tuple[int, int], expected: bool) -> None:
    assert is_frame(*size, ROI, frame) is expected


def test_a_roi_of_the_frames_shape_crops_only_frame_sized_images() -> None:
    same_shape = [0.1, 0.1, 0.5, 0.5]  # 4:3 like the frame
    assert is_frame(640, 480, same_shape) and is_frame(1280, 960, same_shape)
    assert not is_frame(256, 192, same_shape)  # a 4:3 crop of it
