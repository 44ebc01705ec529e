"""The Capture page's camera, class and zip paths and the Dataset page, run by AppTest on real studios.

Camera frames are real ELPV cells fed through the page's own video callback (the WebRTC component
itself is replaced by a recorder, see conftest.py); everything after the callback is the real code.
"""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import av
import numpy as np
from PIL import Image
from sqlalchemy import select

from core.audit import SYSTEM
from core.dataset import DatasetFilter, browse
from core.images import decode_image
from core.samples import class_counts
from core.studio import Studio
from core.tools import create_tool, get_tool
from storage.tables import Sample, Tool
from tests.pages.conftest import StreamerRecorder
from tests.pages.test_pages import (  # noqa: F401 - fixtures used by name
    CLASSES,
    DEFECTIVE_CELLS,
    GOOD_CELLS,
    TOOL,
    button,
    empty_studio,
    metrics,
    open_page,
    texts,
    trained_studio,
    trained_template,
)


def cell_frame(index: int, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A real ELPV cell, in colour, at a camera's frame size: ``(H, W, 3)`` uint8."""
    rgb = decode_image(GOOD_CELLS[index].read_bytes()).rgb
    return np.asarray(Image.fromarray(rgb).resize(size))


def video_frame(rgb: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def capture_rows(studio: Studio) -> list[Sample]:
    with studio.transaction() as session:
        return list(session.scalars(select(Sample).where(Sample.source == "capture").order_by(Sample.id)))


# --- capture: camera -------------------------------------------------------------------------------
def test_snapshot_stores_the_roi_of_the_latest_frame(empty_studio: Studio, camera_widgets: StreamerRecorder) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    with empty_studio.transaction() as session:
        session.scalar(select(Tool)).roi = [0.25, 0.0, 0.75, 1.0]
    at = open_page("capture")
    grabber = camera_widgets.callback("capture-camera")
    assert camera_widgets.calls[-1]["rtc_configuration"] == {"iceServers": []}

    frame = cell_frame(0)
    preview = grabber(video_frame(frame)).to_ndarray(format="rgb24")  # the video thread's call
    assert (preview[240, 160] != frame[240, 160]).any()  # the ROI outline is drawn on the preview...
    at.main.selectbox[0].select("defective").run()
    button(at, "Snapshot as 'defective'").click().run()
    assert not at.exception
    assert texts(at.success) == ["Added 1 snapshot(s) as 'defective'"]
    assert metrics(at) == {"good": "0 / 20", "defective": "1 / 20"}
    [row] = capture_rows(empty_studio)
    stored = decode_image(empty_studio.images.read(row.image_key)).rgb
    assert (row.width, row.height, row.label) == (320, 480, "defective")
    assert np.array_equal(stored, frame[:, 160:480])  # ...but the sample is the clean ROI crop
    assert row.thumb_key is not None and row.phash is not None


def test_snapshot_without_a_camera_frame_warns(empty_studio: Studio) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    at = open_page("capture")
    button(at, "Snapshot as 'good'").click().run()
    assert not at.exception
    assert texts(at.warning) == ["No camera frame: press START and allow the camera (or reconnect it)."]
    assert capture_rows(empty_studio) == []


def test_burst_stores_n_new_frames(empty_studio: Studio, camera_widgets: StreamerRecorder) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    at = open_page("capture")
    grabber = camera_widgets.callback("capture-camera")
    at.number_input(key="burst-count").set_value(3)
    at.number_input(key="burst-interval").set_value(0.2)
    stop = threading.Event()

    def camera() -> None:  # a 20 fps camera showing a different cell in each frame
        index = 0
        while not stop.wait(0.05):
            grabber(video_frame(cell_frame(index % len(GOOD_CELLS))))
            index += 1

    thread = threading.Thread(target=camera, daemon=True)
    thread.start()
    try:
        button(at, "Burst").click().run()
    finally:
        stop.set()
        thread.join()
    assert not at.exception
    assert texts(at.success) == ["Added 3 frame(s) as 'good'"]
    assert class_counts(empty_studio, TOOL) == {"good": 3, "defective": 0}
    assert len({row.sha256 for row in capture_rows(empty_studio)}) == 3


def test_new_class_is_added_and_chosen(empty_studio: Studio) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    at = open_page("capture")
    at.main.selectbox[0].select("+ New class...").run()
    assert "Name the new class and press **Add class** before capturing." in texts(at.info)
    [name_input] = [t for t in at.main.text_input if t.label == "New class name"]
    name_input.input("Scratch")
    button(at, "Add class").click().run()
    assert not at.exception
    assert get_tool(empty_studio, TOOL).classes == ["good", "defective", "scratch"]
    assert at.main.selectbox[0].value == "scratch"
    assert metrics(at) == {"good": "0 / 20", "defective": "0 / 20", "scratch": "0 / 20"}


def test_upload_of_a_zip_uses_its_class_folders(empty_studio: Studio) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in GOOD_CELLS[:3]:
            archive.write(path, f"good/{path.name}")
        for path in DEFECTIVE_CELLS[:2]:
            archive.write(path, f"defective/{path.name}")
        archive.writestr("loose.png", GOOD_CELLS[3].read_bytes())  # no folder: the chosen label
        archive.writestr("good/readme.png", b"not an image")
    at = open_page("capture")
    at.main.selectbox[0].select("defective")
    at.file_uploader[0].set_value([("cells.zip", buffer.getvalue(), "application/zip")])
    button(at, "Add to dataset").click().run()
    assert not at.exception
    assert texts(at.success) == ["Added 6 image(s) as 'defective'"]
    assert [e.value for e in at.error] == ["good/readme.png: not an image (or a format that is not supported)"]
    assert class_counts(empty_studio, TOOL) == {"good": 3, "defective": 3}


def test_upload_of_a_damaged_zip_is_refused(empty_studio: Studio) -> None:
    create_tool(empty_studio, TOOL, CLASSES, actor=SYSTEM)
    at = open_page("capture")
    at.file_uploader[0].set_value([("broken.zip", b"PK\x03\x04 not really a zip", "application/zip")])
    button(at, "Add to dataset").click().run()
    assert not at.exception
    (error,) = texts(at.error)
    assert error.startswith("broken.zip is damaged and cannot be opened (") and error.endswith(
        "nothing from it was imported. Zip the folder again and use the new file.")
    assert class_counts(empty_studio, TOOL) == {"good": 0, "defective": 0}


# --- dataset ---------------------------------------------------------------------------------------
def pick(at, ids: list[int]) -> None:  # noqa: ANN001 - an AppTest
    for sample_id in ids:
        at.checkbox(key=f"pick-{sample_id}").check()


def test_dataset_page_shows_thumbnails_and_statistics(trained_studio: Studio) -> None:
    at = open_page("dataset")
    assert metrics(at) == {"good": "20", "defective": "20"}
    assert len(at.image) == 40  # one page holds all 40 samples
    assert len([c for c in at.checkbox if c.key.startswith("pick-")]) == 40
    page = browse(trained_studio, TOOL)
    assert all(isinstance(item.thumbnail, bytes) or Path(item.thumbnail).is_file() for item in page.items)
    assert any(c.value.startswith("40 sample(s) · page 1 of 1") for c in at.caption)

    at.multiselect(key="filter-labels").select("defective").run()
    assert not at.exception
    assert len(at.image) == 20
    assert any(c.value.startswith("20 sample(s)") for c in at.caption)


def test_dataset_page_relabels_deletes_undoes_and_holds_out(trained_studio: Studio) -> None:
    at = open_page("dataset")
    ids = [item.id for item in browse(trained_studio, TOOL, DatasetFilter(labels=["good"])).items[:3]]

    pick(at, ids[:2])
    button(at, "Delete").click().run()
    assert not at.exception
    assert texts(at.success) == ["2 sample(s) deleted. Undo brings them back."]
    assert class_counts(trained_studio, TOOL) == {"good": 18, "defective": 20}
    assert len(at.image) == 38
    assert not any(c.value for c in at.checkbox if c.key.startswith("pick-"))  # the selection is cleared

    button(at, "Undo delete").click().run()
    assert texts(at.success) == ["2 sample(s) restored."]
    assert class_counts(trained_studio, TOOL) == {"good": 20, "defective": 20}

    pick(at, ids)
    at.selectbox(key="dataset-relabel-to").select("defective")
    button(at, "Relabel").click().run()
    assert texts(at.success) == ["3 sample(s) relabelled as 'defective'."]
    assert class_counts(trained_studio, TOOL) == {"good": 17, "defective": 23}

    pick(at, ids[:1])
    button(at, "Held-out").click().run()
    assert texts(at.success) == ["1 sample(s) marked held-out."]
    held = browse(trained_studio, TOOL, DatasetFilter(splits=["held_out"])).items
    assert [item.id for item in held] == ids[:1]

    button(at, "Delete").click().run()  # nothing selected
    assert texts(at.warning) == ["Select one or more samples first."]


def test_dataset_page_exports_a_zip(trained_studio: Studio) -> None:
    at = open_page("dataset")
    button(at, "Prepare export").click().run()
    assert not at.exception
    exports = list((trained_studio.settings.data_dir / "exports").glob("solar-cell-*.zip"))
    assert len(exports) == 1
    with zipfile.ZipFile(exports[0]) as archive:
        assert len([n for n in archive.namelist() if n.endswith(".png")]) == 40
        assert "manifest.csv" in archive.namelist()
    downloads = at.get("download_button")
    assert len(downloads) == 1 and f"Download {exports[0].name} (40 samples)" in str(downloads[0].proto)
