"""The demo stream on the demo project judges the part: its own images, placed as the demo stream
places them, through the live processor with the live settings the page starts from."""

from __future__ import annotations

import pytest

from core.demo import DEMO_TOOL, build_demo
from core.inspect.models import load_tool_models
from core.live.demo import demo_images, place
from core.live.processor import FrameProcessor
from core.live.settings import LiveSettings
from core.live.tool import live_config
from core.studio import Studio
from tests.core.live.conftest import open_at

pytestmark = pytest.mark.slow


def test_demo_stream_judges_the_part_not_the_frame(tmp_path) -> None:  # noqa: ANN001
    studio: Studio = open_at(tmp_path / "data")
    try:
        build_demo(studio, seed=0)
        tool = load_tool_models(studio, DEMO_TOOL)
        assert list(tool.roi) == [0.2, 0.1, 0.8, 0.9]  # where core.live.demo.place puts a square cell
        images = demo_images(studio, DEMO_TOOL, limit=40)
        settings = LiveSettings(live_config(studio, DEMO_TOOL))
        decisions: dict[str, list[str]] = {"defective": [], "good": []}
        for n, image in enumerate(images):
            processor = FrameProcessor([tool], settings)  # a fresh smoothing window per part
            frame = place(image)
            for _ in range(settings.snapshot().smoothing):
                processor.process(frame)
            # demo_images alternates the classes in name order: defective, good, defective, ...
            decisions[("defective", "good")[n % 2]].append(processor.last_report.decision)
        good, bad = decisions["good"], decisions["defective"]
        assert len(good) == len(bad) == 20
        assert good.count("fail") <= len(good) / 10, decisions
        assert len(bad) - bad.count("pass") >= 0.8 * len(bad), decisions
    finally:
        studio.engine.dispose()
