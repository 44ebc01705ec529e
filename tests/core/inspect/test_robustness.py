"""The tool's robustness settings on every path: its test-time variants in the one engine (and the Live
page's mirror toggle on top), training-time augmentation through ``core.training.train``, and position
correction (trained with the version, applied by the engine)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.audit import SYSTEM
from core.config import Settings
from core.inspect.engine import inspect, judge
from core.inspect.models import LoadedModel, ToolModels, load_tool_models
from core.samples import import_path
from core.studio import open_studio
from core.tool_settings import RobustnessOptions, ToolSettings, change_settings
from core.tools import create_tool
from core.training import train
from models.augment import move
from models.classifier import FewShotClassifier
from models.registration import REFERENCE_FILE
from models.registry import load_model
from models.tta import judge_views
from storage import repository as repo

pytestmark = pytest.mark.slow


def _cells(folder: Path, n: int) -> list[np.ndarray]:
    return [np.repeat(np.asarray(Image.open(p).convert("L"))[:, :, None], 3, axis=2)
            for p in sorted(folder.glob("*.png"))[:n]]


@pytest.fixture(scope="module")
def classifier(elpv_subset: Path) -> FewShotClassifier:
    good, bad = _cells(elpv_subset / "good", 6), _cells(elpv_subset / "defective", 6)
    return FewShotClassifier(profile="fast", cv_folds=3).fit(good + bad, ["good"] * 6 + ["defective"] * 6)


def _tool(model: FewShotClassifier, tta: tuple[str, ...]) -> ToolModels:
    settings = ToolSettings(robustness=RobustnessOptions(tta=tta))
    loaded = LoadedModel("classifier", 1, model, model.threshold_, model.review_band_)
    return ToolModels("cells", 1, "good", ("defective", "good"), None, settings, (loaded,), {}, False)


def test_the_engine_judges_with_the_tools_test_time_variants(classifier, elpv_subset: Path) -> None:
    cell = _cells(elpv_subset / "defective", 8)[7]
    plain = inspect(_tool(classifier, ()), cell, roi="whole")
    assert plain.verdict.score == pytest.approx(classifier.judge([cell])[0].score)
    shifted = inspect(_tool(classifier, ("shift",)), cell, roi="whole")
    assert shifted.verdict.score == pytest.approx(judge_views(classifier, [cell], ["shift"])[0].score)
    assert shifted.verdict.score != pytest.approx(plain.verdict.score)
    live = judge(_tool(classifier, ("shift",)), cell, tta=True)[0]  # the Live page's mirror toggle adds the mirror
    assert live.score == pytest.approx(judge_views(classifier, [cell], ["mirror", "shift"])[0].score)


def test_training_follows_the_tools_augment_setting(tmp_path: Path, elpv_subset: Path) -> None:
    studio = open_studio(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'studio.db'}"))
    create_tool(studio, "cells", ["good", "defective"], actor=SYSTEM)
    for label in ("good", "defective"):
        folder = tmp_path / "import" / label
        folder.mkdir(parents=True)
        for path in sorted((elpv_subset / label).glob("*.png"))[:5]:
            (folder / path.name).write_bytes(path.read_bytes())
    assert import_path(studio, "cells", tmp_path / "import", actor=SYSTEM).imported == 10
    def augmentation(version_id: int) -> str:
        with studio.transaction() as session:
            folder = studio.settings.models_dir / repo.get_model_version(session, version_id).artifact_dir
        return load_model(folder).augment

    assert augmentation(train(studio, "cells", profile="fast", actor=SYSTEM).version_id) == "none"  # the default
    change_settings(studio, "cells", SYSTEM, {"robustness.augment": "on"})
    assert augmentation(train(studio, "cells", profile="fast", actor=SYSTEM).version_id) == "line"


def _framed(cell: np.ndarray, dx: float = 0.0, dy: float = 0.0, degrees: float = 0.0) -> np.ndarray:
    """A 300 px cell on a 30 px black fixture border, moved by ``dx`` / ``dy`` of its side and turned."""
    return move(np.pad(cell, ((30, 30), (30, 30), (0, 0))), dx * 300 / 360, dy * 300 / 360, degrees)


def test_position_correction_is_trained_with_the_version_and_every_inspection_cuts_where_the_part_lies(
        tmp_path: Path, elpv_subset: Path) -> None:
    studio = open_studio(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'studio.db'}"))
    create_tool(studio, "cells", ["good", "defective"], actor=SYSTEM)
    import_path(studio, "cells", elpv_subset, actor=SYSTEM)
    train(studio, "cells", method="knn", profile="fast", actor=SYSTEM)
    assert load_tool_models(studio, "cells").locator is None  # the default: the region is judged as drawn
    change_settings(studio, "cells", SYSTEM, {"robustness.position": "on"})
    result = train(studio, "cells", method="knn", profile="fast", actor=SYSTEM)
    assert any(notice.startswith("position correction") for notice in result.notices)
    with studio.transaction() as session:
        folder = studio.settings.models_dir / repo.get_model_version(session, result.version_id).artifact_dir
    assert (folder / REFERENCE_FILE).is_file()
    tool = replace(load_tool_models(studio, "cells"), roi=(30 / 360, 30 / 360, 330 / 360, 330 / 360))
    assert tool.locator is not None
    uncorrected = replace(tool, models=tuple(replace(m, locator=None) for m in tool.models))
    moved_off, restored = [], []
    for cell in _cells(elpv_subset / "good", 12)[-3:] + _cells(elpv_subset / "defective", 3):
        resting = inspect(tool, _framed(cell), roi="crop")
        moved_frame = _framed(cell, 0.05, -0.03, 3.0)
        moved = inspect(tool, moved_frame, roi="crop")  # the engine's path: ROI, correction, models, decision
        assert np.array_equal(moved.crop, tool.locator.cut(moved_frame, moved.box))
        plain = inspect(uncorrected, moved_frame, roi="crop")
        assert plain.box == moved.box == (30, 30, 330, 330)
        moved_off.append(abs(plain.verdict.score - resting.verdict.score))
        restored.append(abs(moved.verdict.score - resting.verdict.score))
    assert sum(restored) < 0.5 * sum(moved_off)
