"""Every page of the app, run by Streamlit's AppTest against real studios (SQLite, real ELPV cells,
a really trained model): no mocks of the services, the database or the models.

One trained studio is built per module; each test runs on its own copy of it (or on its own empty
studio), so tests that change data stay independent. ``STUDIO_DATA_DIR`` selects the studio: the
page's ``st.cache_resource`` keys the studio by the settings, so each folder gets its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.analytics import daily_stats, default_range
from core.audit import SYSTEM
from core.config import Settings, load_settings
from core.images import decode_image, encode_png
from core.inspect.decision import Verdict
from core.inspect.recorder import RecordContext
from core.inspect.service import predict_image
from core.model_versions import list_versions
from core.reviews import review_queue
from core.samples import class_counts, import_path, recent_samples
from core.studio import Studio, open_studio
from core.tools import create_tool, get_tool, list_tools
from core.training import train
from models.profiles import DEFAULT_PROFILE
from storage.tables import utc_now
from tests.inspections import classifier_of, record

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
ELPV = ROOT / "tests" / "data" / "elpv"
GOOD_CELLS = sorted((ELPV / "good").glob("*.png"))
DEFECTIVE_CELLS = sorted((ELPV / "defective").glob("*.png"))
TOOL = "solar-cell"
CLASSES = "good,defective"
PAGES = ["capture", "dataset", "train", "live", "review", "analytics", "models"]
TITLES = {"capture": "Capture", "dataset": "Dataset", "train": "Train", "live": "Live inspection",
          "review": "Review queue", "analytics": "Analytics", "models": "Model versions"}


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with tool ``solar-cell``: the 40 committed ELPV cells and a trained model.

    Never opened by the app; tests run on copies of it.
    """
    data_dir = tmp_path_factory.mktemp("trained") / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, CLASSES, actor=SYSTEM)
    report = import_path(studio, TOOL, ELPV, actor=SYSTEM)
    assert report.imported == 40
    train(studio, TOOL, actor=SYSTEM)
    studio.engine.dispose()
    return data_dir


def _use(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Studio:
    """Point the app at ``data_dir``; returns a studio on the same database for the test's checks."""
    monkeypatch.setenv("STUDIO_DATA_DIR", str(data_dir))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return open_studio(load_settings())


@pytest.fixture
def empty_studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    studio = _use(tmp_path / "data", monkeypatch)
    yield studio
    studio.engine.dispose()


def studio_copy(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Studio:
    """The app pointed at a private copy of the data folder ``template``."""
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    return _use(data_dir, monkeypatch)


@pytest.fixture
def trained_studio(trained_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    """A private copy of the trained studio."""
    studio = studio_copy(trained_template, tmp_path, monkeypatch)
    yield studio
    studio.engine.dispose()


def open_page(page: str, tab: str | None = None) -> AppTest:
    """Run the app, go to ``page`` (and its ``tab``) and check it rendered without an exception."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page != "capture":  # the default page
        at.switch_page(f"pages/{page}.py").run()
    if tab is not None:  # the page's stateful tabs (key "tab") run only the open one
        at.session_state["tab"] = tab
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == TITLES[page]
    return at


def texts(elements) -> list[str]:  # noqa: ANN001 - an ElementList
    return [element.value for element in elements]


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def button(at: AppTest, label: str):  # noqa: ANN201 - a Button
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    return matches[0]


def cell(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "image/png")


def inspections_today(studio: Studio) -> int:
    start, end = default_range(1)
    return int(daily_stats(studio, TOOL, start, end)["inspections"].sum())


# --- empty studio ----------------------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_every_page_of_an_empty_studio_asks_for_a_tool(empty_studio: Studio, page: str) -> None:
    at = open_page(page)
    assert "Create an inspection tool in the sidebar to start." in texts(at.main.info)
    assert "No tool yet: create one below." in texts(at.sidebar.info)
    assert [t.label for t in at.sidebar.text_input][:2] == ["Name", "Classes (comma-separated)"]


def test_sidebar_form_creates_a_tool(empty_studio: Studio) -> None:
    at = open_page("train")
    at.sidebar.text_input[0].input("bracket")
    at.sidebar.text_input[1].input("good, scratch,dent")
    button(at, "Create tool").click().run()
    assert not at.exception

    tools = list_tools(empty_studio)
    assert [(t.name, t.classes) for t in tools] == [("bracket", ["good", "scratch", "dent"])]
    assert at.session_state["tool"] == "bracket"
    assert at.sidebar.selectbox[0].value == "bracket"
    at.switch_page("pages/capture.py").run()
    assert not at.exception
    assert metrics(at) == {"good": "0 / 20", "scratch": "0 / 20", "dent": "0 / 20"}


def test_sidebar_form_creates_a_second_tool_and_selects_it(empty_studio: Studio) -> None:
    create_tool(empty_studio, "bracket", CLASSES, actor=SYSTEM)
    at = open_page("capture")
    assert at.sidebar.selectbox[0].value == "bracket"
    at.sidebar.text_input[0].input("cells")
    button(at, "Create tool").click().run()
    assert not at.exception, [e.value for e in at.exception]  # the selector's key is set before it exists
    assert [t.name for t in list_tools(empty_studio)] == ["bracket", "cells"]
    assert at.sidebar.selectbox[0].value == "cells"


def test_sidebar_form_refuses_an_invalid_tool(empty_studio: Studio) -> None:
    at = open_page("capture")
    at.sidebar.text_input[0].input("Bad Name!")
    button(at, "Create tool").click().run()
    assert not at.exception
    assert any("tool name 'Bad Name!'" in message for message in texts(at.sidebar.error))
    assert list_tools(empty_studio) == []

    at.sidebar.text_input[0].input("cells")
    at.sidebar.text_input[1].input("ok,crack")  # no 'good' class
    button(at, "Create tool").click().run()
    assert any("must include 'good'" in message for message in texts(at.sidebar.error))
    assert list_tools(empty_studio) == []


# --- capture ---------------------------------------------------------------------------------------

def test_capture_shows_the_class_counts_and_latest_samples(trained_studio: Studio) -> None:
    at = open_page("capture")
    assert metrics(at) == {"good": "20 / 20", "defective": "20 / 20"}
    assert len(at.image) == 12  # the 12 latest samples
    assert at.file_uploader[0].accept_multiple_files


def test_capture_upload_adds_real_images_and_reports_rejects(empty_studio: Studio) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    at = open_page("capture")
    assert metrics(at) == {"good": "0 / 20", "defective": "0 / 20"}

    at.file_uploader[0].set_value([cell(DEFECTIVE_CELLS[0]), cell(DEFECTIVE_CELLS[1]),
                                   ("notes.png", b"not an image at all", "image/png")])
    at.main.selectbox[0].select("defective")
    button(at, "Add to dataset").click().run()
    assert not at.exception
    assert texts(at.success) == ["Added 2 image(s) as 'defective'"]
    assert len(at.error) == 1 and at.error[0].value.startswith("notes.png: not an image")
    assert class_counts(empty_studio, TOOL) == {"good": 0, "defective": 2}
    assert metrics(at) == {"good": "0 / 20", "defective": "2 / 20"}  # counts include this upload
    assert {(s.label, s.source) for s in recent_samples(empty_studio, TOOL)} == {("defective", "upload")}

    # The same file again is a duplicate, not a new sample.
    at.file_uploader[0].set_value([cell(DEFECTIVE_CELLS[0]), cell(GOOD_CELLS[0])])
    at.main.selectbox[0].select("good")
    button(at, "Add to dataset").click().run()
    assert not at.exception
    assert texts(at.success) == ["Added 1 image(s) as 'good'; 1 duplicate(s) skipped"]
    assert class_counts(empty_studio, TOOL) == {"good": 1, "defective": 2}


def test_capture_submit_without_files_warns(empty_studio: Studio) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    at = open_page("capture")
    button(at, "Add to dataset").click().run()
    assert not at.exception
    assert texts(at.warning) == ["Choose one or more images first."]
    assert class_counts(empty_studio, TOOL) == {"good": 0, "defective": 0}


# --- train -----------------------------------------------------------------------------------------

def finish_training(at: AppTest) -> None:
    """Wait for the page's background training job to end, then rerun the page as its poll would
    (a job that ended before the page's own rerun has been shown already)."""
    if "training_job" in at.session_state:
        assert at.session_state["training_job"].wait(timeout=300), "training did not end"
        at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_train_with_too_few_images_says_how_many_are_missing(empty_studio: Studio, tmp_path: Path) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    folder = tmp_path / "three"
    folder.mkdir()
    for path in GOOD_CELLS[:3]:
        shutil.copy(path, folder / path.name)
    assert import_path(empty_studio, TOOL, folder, label="good", actor=SYSTEM).imported == 3

    at = open_page("train")
    warnings = texts(at.warning)
    assert "'good' has 3 image(s): add 2 more to train." in warnings
    assert "'defective' has 0 image(s): add 5 more to train." in warnings
    assert not [s for s in at.subheader if s.value.startswith("Active model")]

    button(at, "Train").click().run()
    finish_training(at)
    assert any("at least two classes" in message for message in texts(at.error))
    assert not at.success
    assert list_versions(empty_studio, TOOL) == []
    assert not get_tool(empty_studio, TOOL).trained


def test_train_page_warns_of_imbalance_and_near_duplicates(empty_studio: Studio, tmp_path: Path) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    folder = tmp_path / "cells"
    (folder / "good").mkdir(parents=True)
    (folder / "defective").mkdir()
    for path in GOOD_CELLS[:16]:
        shutil.copy(path, folder / "good" / path.name)
    for path in DEFECTIVE_CELLS[:5]:
        shutil.copy(path, folder / "defective" / path.name)
    rgb = decode_image(GOOD_CELLS[0].read_bytes()).rgb
    brighter = (rgb.astype(int) * 11 // 10 + 3).clip(0, 255).astype("uint8")  # a re-shot: new bytes, same cell
    (folder / "good" / "reshot.png").write_bytes(encode_png(brighter))
    assert import_path(empty_studio, TOOL, folder, actor=SYSTEM).imported == 22

    at = open_page("train")
    warnings = texts(at.warning)
    assert any(w.startswith("The classes are imbalanced: 'good' has 17 images, 'defective' only 5.") for w in warnings)
    (duplicates,) = [w for w in warnings if "near-duplicate" in w]
    assert duplicates.startswith("1 near-duplicate pair(s) of samples")


def test_train_page_shows_the_active_model_validation(trained_studio: Studio) -> None:
    at = open_page("train")
    assert not at.warning
    (version,) = list_versions(trained_studio, TOOL)
    assert version.id == get_tool(trained_studio, TOOL).active_versions.get("classifier")
    assert f"Active model: v{version.id} ({DEFAULT_PROFILE})" in texts(at.subheader)
    shown = metrics(at)
    assert shown["Cross-validated balanced accuracy"] == f"{version.validation['balanced_accuracy']:.1%}"
    assert 0.5 < version.validation["balanced_accuracy"] <= 1.0  # better than chance on real cells
    assert shown["ROC AUC (cross-validated)"] == f"{version.validation['roc']['auc']:.3f}"
    assert len(at.dataframe) == 3  # recall, confusion matrix, versions
    mistakes = version.validation["misclassified_samples"]
    assert (f"Misclassified in cross-validation: {len(mistakes)} image(s) (defect score: out-of-fold)"
            in texts(at.caption))
    calibrated = version.validation["threshold"]
    assert [s.value for s in at.slider][0] == pytest.approx(round(calibrated, 2), abs=0.006)


def test_moving_the_threshold_and_back_to_calibrated(trained_studio: Studio) -> None:
    at = open_page("train")
    (version,) = list_versions(trained_studio, TOOL)
    at.slider[0].set_value(0.8)
    button(at, "Use this threshold").click().run()
    assert not at.exception
    assert classifier_of(trained_studio, TOOL).threshold == pytest.approx(0.8)
    assert any("In use: your threshold 0.800" in c for c in texts(at.caption))
    button(at, "Back to calibrated").click().run()
    assert classifier_of(trained_studio, TOOL).threshold == version.validation["threshold"]
    assert any("In use: the calibrated values." in c for c in texts(at.caption))


def test_train_button_trains_in_the_background_and_activates_a_new_model(trained_studio: Studio) -> None:
    before = get_tool(trained_studio, TOOL).active_versions.get("classifier")
    at = open_page("train")
    assert at.radio[0].value == DEFAULT_PROFILE
    button(at, "Train").click().run()
    assert not at.exception
    assert button(at, "Cancel training")  # progress and Cancel while the job runs
    assert "Train" not in [b.label for b in at.button]
    finish_training(at)

    after = get_tool(trained_studio, TOOL).active_versions.get("classifier")
    assert after is not None and after != before
    (success,) = at.success
    assert success.value.startswith(f"Model v{after} trained on 40 images in ")
    assert success.value.endswith("and made active.")
    versions = {v.id: v for v in list_versions(trained_studio, TOOL)}
    assert versions[after].status == "active" and versions[before].status != "active"
    assert f"Active model: v{after} ({DEFAULT_PROFILE})" in texts(at.subheader)
    assert metrics(at)["Cross-validated balanced accuracy"] == \
        f"{versions[after].validation['balanced_accuracy']:.1%}"


def test_cancel_button_stops_training_and_keeps_the_active_model(trained_studio: Studio) -> None:
    before = get_tool(trained_studio, TOOL).active_versions.get("classifier")
    at = open_page("train")
    button(at, "Train").click().run()
    button(at, "Cancel training").click().run()
    finish_training(at)
    assert "Training cancelled; the active model is unchanged." in texts(at.info)
    assert not at.success
    assert get_tool(trained_studio, TOOL).active_versions.get("classifier") == before
    assert [v.id for v in list_versions(trained_studio, TOOL)] == [before]


# --- live ------------------------------------------------------------------------------------------

def test_live_without_a_model_asks_to_train(empty_studio: Studio) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    at = open_page("live")
    assert texts(at.info) == [f"Tool **{TOOL}** has no trained model yet: train one on the Train page."]
    assert not at.file_uploader


def test_live_inspects_uploaded_cells_and_records_them(trained_studio: Studio) -> None:
    at = open_page("live", tab="Photo")
    assert "Upload a photo to inspect it." in texts(at.info)
    assert inspections_today(trained_studio) == 0

    def banner() -> str:
        html = [m.value for m in at.markdown if "font-size:2.6rem" in m.value]
        assert len(html) == 1, texts(at.markdown)
        return html[0]

    at.file_uploader[0].set_value(cell(DEFECTIVE_CELLS[0])).run()
    assert not at.exception
    assert ">FAIL</div>" in banner()
    assert inspections_today(trained_studio) == 1
    assert any("inspection #" in c.value and "Label **defective**" in c.value for c in at.caption), texts(at.caption)
    served = classifier_of(trained_studio, TOOL)  # its own threshold, not a fixed 0.50
    assert any(c.value.startswith(f"classifier v{served.version_id}: **fail** (score ")
               and c.value.endswith(f"threshold {served.threshold:.2f}) · degraded: one model decided alone")
               for c in at.caption), texts(at.caption)

    at.file_uploader[0].set_value(cell(GOOD_CELLS[0])).run()
    assert not at.exception
    assert ">PASS</div>" in banner()
    assert inspections_today(trained_studio) == 2
    expected = predict_image(trained_studio, TOOL, GOOD_CELLS[0].name, GOOD_CELLS[0].read_bytes(), record=False,
        actor=SYSTEM)
    assert metrics(at)["Defect score"] == f"{expected.inspection.verdict.score:.2f}"

    # Not recorded when the toggle is off.
    at.toggle(key="photo-record").set_value(False)
    at.file_uploader[0].set_value(cell(GOOD_CELLS[1])).run()
    assert not at.exception
    assert ">PASS</div>" in banner()
    assert inspections_today(trained_studio) == 2


def test_live_reports_a_file_that_is_not_an_image(trained_studio: Studio) -> None:
    at = open_page("live", tab="Photo")
    at.file_uploader[0].set_value(("broken.png", b"\x89PNG\r\n\x1a\n truncated", "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("broken.png: ")
    assert inspections_today(trained_studio) == 0


# --- review ----------------------------------------------------------------------------------------

def _flag_for_review(studio: Studio, paths: list[Path]) -> list[int]:
    """Record inspections of real cells that the model sent to a person (decision 'review')."""
    ids = []
    for path in paths:
        # Re-encoded as the Live page stores it: new bytes, so not one of the tool's samples yet.
        png = encode_png(decode_image(path.read_bytes()).rgb)
        verdict = Verdict("review", "good", 0.45)
        ids.append(record(studio, TOOL, verdict, {"good": 0.55, "defective": 0.45}, png, station="test"))
    return ids


def test_review_shows_the_queue_and_stores_verdicts(trained_studio: Studio) -> None:
    first, second = _flag_for_review(trained_studio, [GOOD_CELLS[5], DEFECTIVE_CELLS[5]])
    at = open_page("review")
    assert "2 inspection(s) waiting · 2 uncertain · most urgent first, then oldest" in texts(at.caption)
    assert f"**Inspection #{first}**" in " ".join(texts(at.markdown))
    assert metrics(at)["Model says"] == "REVIEW · good"
    assert len(at.image) == 1

    button(at, "Good").click().run()
    assert not at.exception
    items, waiting = review_queue(trained_studio, TOOL)
    assert waiting == 1 and [i.inspection_id for i in items] == [second]
    reviewed = [s for s in recent_samples(trained_studio, TOOL, limit=100) if s.source == "review"]
    assert [s.label for s in reviewed] == ["good"]
    assert class_counts(trained_studio, TOOL) == {"good": 21, "defective": 20}
    assert "1 inspection(s) waiting · 1 uncertain · most urgent first, then oldest" in texts(at.caption)
    assert f"**Inspection #{second}**" in " ".join(texts(at.markdown))

    button(at, "Defective").click().run()
    assert not at.exception
    assert review_queue(trained_studio, TOOL)[1] == 0
    assert class_counts(trained_studio, TOOL) == {"good": 21, "defective": 21}
    assert texts(at.success) == ["Nothing to review: every flagged inspection has a verdict."]


def test_review_with_an_empty_queue(trained_studio: Studio) -> None:
    at = open_page("review")
    assert texts(at.success) == ["Nothing to review: every flagged inspection has a verdict."]
    assert not [b for b in at.button if b.label in ("Good", "Defective")]


# --- analytics -------------------------------------------------------------------------------------

def test_analytics_without_inspections(trained_studio: Studio) -> None:
    at = open_page("analytics")
    assert texts(at.info) == ["No inspections in this period."]
    assert not at.metric


def test_analytics_kpis_count_the_inspections_of_the_period(trained_studio: Studio) -> None:
    decisions = [predict_image(trained_studio, TOOL, p.name, p.read_bytes(),
                               context=RecordContext("test"), actor=SYSTEM).inspection.decision
                 for p in [*GOOD_CELLS[:3], *DEFECTIVE_CELLS[:2]]]
    _flag_for_review(trained_studio, [GOOD_CELLS[6]])
    decisions.append("review")
    # One inspection a month ago: outside the default 14-day period.
    record(trained_studio, TOOL, Verdict("fail", "defective", 0.9), {"good": 0.1, "defective": 0.9}, None,
           created_at=utc_now() - timedelta(days=30))

    at = open_page("analytics")
    assert "No inspections in this period." not in texts(at.info)
    total, failed, review = len(decisions), decisions.count("fail"), decisions.count("review")
    assert (total, failed, review) == (6, 2, 1)  # the model is sure about its own training cells
    shown = metrics(at)
    assert (shown["Inspections"], shown["Defect rate"], shown["Review rate"]) == (
        "6", f"{failed / total:.1%}", f"{review / total:.1%}")
    assert len(at.dataframe[0].value) == 6  # the recent inspections of the period

    # A period without inspections.
    start, _ = default_range(14)
    at.date_input[0].set_value((start - timedelta(days=60), start - timedelta(days=40))).run()
    assert not at.exception
    assert texts(at.info) == ["No inspections in this period."]
