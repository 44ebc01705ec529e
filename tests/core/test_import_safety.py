"""Import of every format and every bad case of issue 7: grayscale, downscaling, 20,000 x 20,000
pixels, cancel, a crash mid-import (an exception and a real ``kill -9``), near-duplicates."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from core.audit import SYSTEM
from core.config import Settings
from core.errors import InvalidInputError
from core.images import decode_image
from core.samples import BATCH_ROWS, WINDOW, WORKERS, Candidate, add_images, class_counts, import_path
from core.studio import Studio, open_studio
from core.thumbnails import THUMB_SIDE, thumbnail_store
from core.tools import create_tool
from storage import repository
from storage.tables import Sample
from tests.cli_accounts import add_accounts

ROOT = Path(__file__).resolve().parents[2]
TOOL = "cells"


@pytest.fixture
def tool(studio: Studio) -> str:
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    return TOOL


def rows(studio: Studio) -> list[Sample]:
    with studio.transaction() as session:
        return list(session.scalars(select(Sample).order_by(Sample.id)))


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def assert_store_consistent(studio: Studio) -> None:
    """Every row has its image and thumbnail, whole; no temporary (half) file anywhere."""
    for row in rows(studio):
        decode_image(studio.images.read(row.image_key))
        assert thumbnail_store(studio).exists(row.thumb_key)
    partial = [p for p in files_under(studio.settings.data_dir) if p.name.startswith(".tmp-")]
    assert partial == []


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_grayscale_and_colour_images(studio: Studio, tool: str, elpv_subset: Path) -> None:
    gray_path = sorted((elpv_subset / "good").glob("*.png"))[0]
    assert Image.open(gray_path).mode == "L"  # the ELPV cells are real 8-bit grayscale PNGs
    colour = np.zeros((30, 40, 3), np.uint8)
    colour[:, :, 1] = 200
    report = add_images(studio, tool, [Candidate("gray.png", "good", gray_path.read_bytes),
                                       Candidate("green.png", "good", lambda: png(colour))], actor=SYSTEM)
    assert report.imported == 2
    gray_row, colour_row = rows(studio)
    assert (gray_row.width, gray_row.height) == (300, 300)
    assert (colour_row.width, colour_row.height) == (40, 30)
    thumb = decode_image(thumbnail_store(studio).read(colour_row.thumb_key)).rgb
    assert abs(int(thumb[5, 5, 1]) - 200) < 8 and thumb[5, 5, 0] < 8  # still green after JPEG


def test_huge_images_are_downscaled_to_the_configured_side(studio: Studio, tool: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_MAX_IMAGE_SIDE", "500")
    ramp = np.tile(np.linspace(0, 255, 1500, dtype=np.uint8)[None, :, None], (600, 1, 3))
    report = add_images(studio, tool, [Candidate("wide.png", "good", lambda: png(ramp))], actor=SYSTEM)
    assert report.imported == 1
    [row] = rows(studio)
    assert (row.width, row.height) == (500, 200)
    stored = decode_image(studio.images.read(row.image_key)).rgb
    assert stored.shape == (200, 500, 3) and row.image_key.endswith(".png")
    assert abs(int(stored[100, 250, 0]) - 128) <= 3  # the same picture, smaller
    thumb = decode_image(thumbnail_store(studio).read(row.thumb_key)).rgb
    assert max(thumb.shape[:2]) == THUMB_SIDE
    # the same file again is still recognised as a duplicate
    again = add_images(studio, tool, [Candidate("wide-again.png", "good", lambda: png(ramp))], actor=SYSTEM)
    assert (again.imported, again.duplicates) == (0, 1)


def test_an_image_of_20000_x_20000_pixels_is_rejected_with_its_size(studio: Studio, tool: str,
                                                                   tmp_path: Path) -> None:
    folder = tmp_path / "in" / "good"
    folder.mkdir(parents=True)
    Image.new("1", (20_000, 20_000)).save(folder / "huge.png")  # a real, tiny-on-disk, huge image
    (folder / "ok.png").write_bytes(png(np.full((8, 8, 3), 90, np.uint8)))
    report = import_path(studio, tool, tmp_path / "in", actor=SYSTEM)
    assert report.imported == 1
    assert report.rejected == [("good/huge.png",
                                "image too large (400,000,000 pixels; at most 40,000,000 pixels)")]


def test_non_image_with_image_extension_and_zero_bytes(studio: Studio, tool: str, tmp_path: Path) -> None:
    folder = tmp_path / "in" / "good"
    folder.mkdir(parents=True)
    (folder / "fake.jpg").write_bytes(b"GIF89a this is a text file really")
    (folder / "zero.tif").write_bytes(b"")
    report = import_path(studio, tool, tmp_path / "in", actor=SYSTEM)
    assert dict(report.rejected) == {"good/fake.jpg": "not an image (or a format that is not supported)",
                                     "good/zero.tif": "empty file"}
    assert rows(studio) == [] and files_under(studio.settings.data_dir / "thumbnails") == []


@pytest.mark.parametrize("member", ["C:/windows/evil.png", "good\\..\\..\\evil.png"])
def test_zip_with_windows_style_unsafe_paths_is_refused(studio: Studio, tool: str, tmp_path: Path,
                                                        member: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("good/fine.png", png(np.zeros((4, 4, 3), np.uint8)))
        out.writestr(zipfile.ZipInfo(member), png(np.ones((4, 4, 3), np.uint8)))
    with pytest.raises(InvalidInputError, match="unsafe path"):
        import_path(studio, tool, archive, actor=SYSTEM)
    assert rows(studio) == [] and files_under(studio.settings.data_dir / "images") == []


def test_cancel_keeps_what_was_imported_whole(studio: Studio, tool: str, elpv_subset: Path) -> None:
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 5:
            cancel.set()

    report = import_path(studio, tool, elpv_subset / "good", label="good", progress=progress, cancel=cancel,
        actor=SYSTEM)
    assert report.cancelled and report.imported == 5
    assert len(rows(studio)) == 5
    assert len(files_under(studio.images.root)) == 5
    assert_store_consistent(studio)
    rest = import_path(studio, tool, elpv_subset / "good", label="good", actor=SYSTEM)  # resuming imports the rest
    assert (rest.imported, rest.duplicates) == (15, 5)


def test_a_failure_while_recording_removes_that_files_images(studio: Studio, tool: str, elpv_subset: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    original = repository.add_sample
    calls = {"n": 0}

    def failing_third(session, **fields):  # noqa: ANN001, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        return original(session, **fields)

    monkeypatch.setattr(repository, "add_sample", failing_third)
    with pytest.raises(RuntimeError, match="power cut"):
        import_path(studio, tool, elpv_subset / "good", label="good", actor=SYSTEM)
    kept = len(rows(studio))  # rows are written in batches: the failing batch is rolled back whole
    assert kept < 20
    assert len(files_under(studio.images.root)) == kept  # the files of every unrecorded sample were removed
    assert len(files_under(studio.settings.data_dir / "thumbnails")) == kept
    assert_store_consistent(studio)


def _four_views(folder: Path, into: Path) -> Path:
    """``folder``'s class folders with each image in four orientations (four times as many distinct
    images): enough rows that a kill lands between two batches of BATCH_ROWS on a fast machine too."""
    for path in folder.glob("*/*.png"):
        (into / path.parent.name).mkdir(parents=True, exist_ok=True)
        rgb = decode_image(path.read_bytes()).rgb
        for index, view in enumerate((rgb, rgb[:, ::-1], rgb[::-1], rgb[::-1, ::-1])):
            (into / path.parent.name / f"{path.stem}_{index}.png").write_bytes(png(np.ascontiguousarray(view)))
    return into


def test_a_killed_import_leaves_no_orphan_rows_and_no_half_files(tmp_path: Path, elpv_subset: Path) -> None:
    """``kill -9`` of a real CLI import mid-way; the studio is consistent and the import can resume."""
    source = _four_views(elpv_subset, tmp_path / "cells")
    total = len(list(source.glob("*/*.png")))
    assert total == 160 and total > 4 * BATCH_ROWS
    data_dir = tmp_path / "data"
    settings = Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}")
    studio = open_studio(settings)
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    env = add_accounts({**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
                        "STUDIO_DATA_DIR": str(data_dir)})
    process = subprocess.Popen([sys.executable, "-m", "core", "samples", "import", str(source), "--tool", TOOL],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(rows(studio)) < 8 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    kept = len(rows(studio))
    assert 8 <= kept < total
    partial = [p for p in files_under(data_dir) if p.name.startswith(".tmp-")]
    for row in rows(studio):  # every recorded sample is whole
        decode_image(studio.images.read(row.image_key))
        assert thumbnail_store(studio).exists(row.thumb_key)
    # besides temporary files (never under a final name), only the complete files of the samples in
    # flight when the process died are not (yet) samples
    complete = [p for p in files_under(studio.images.root) if not p.name.startswith(".tmp-")]
    assert 0 <= len(complete) - kept <= WINDOW + BATCH_ROWS and len(partial) <= 2 * WORKERS

    report = import_path(studio, TOOL, source, actor=SYSTEM)
    assert (report.imported, report.duplicates) == (total - kept, kept)
    assert class_counts(studio, TOOL) == {"good": total // 2, "defective": total // 2}
    assert len(files_under(studio.images.root)) == total  # a left-over file is reused, not duplicated
    assert_store_consistent(studio)
    with studio.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Sample)) == total
    from core.store_check import check_store

    assert check_store(studio, repair=True, grace_seconds=0).problems == 0  # every crash test ends with it
    assert check_store(studio).findings == 0
    studio.engine.dispose()


def test_near_duplicates_are_reported_on_import(studio: Studio, tool: str, elpv_subset: Path) -> None:
    original = sorted((elpv_subset / "good").glob("*.png"))[0]
    rgb = decode_image(original.read_bytes()).rgb
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)  # same picture, other bytes
    recompressed = buffer.getvalue()
    other = sorted((elpv_subset / "defective").glob("*.png"))[0]
    first = add_images(studio, tool, [Candidate("orig.png", "good", original.read_bytes)], actor=SYSTEM)
    report = add_images(studio, tool, [Candidate("copy.jpg", "good", lambda: recompressed),
                                       Candidate("other.png", "defective", other.read_bytes)], actor=SYSTEM)
    assert report.imported == 2
    assert report.near_duplicates == [("copy.jpg", first.sample_ids[0])]


def test_a_deleted_image_imported_again_is_a_duplicate(studio: Studio, tool: str, elpv_subset: Path) -> None:
    from core.dataset import delete, restore

    report = import_path(studio, tool, elpv_subset / "good", label="good", actor=SYSTEM)
    delete(studio, tool, report.sample_ids[:1], actor=SYSTEM)
    again = import_path(studio, tool, elpv_subset / "good", label="good", actor=SYSTEM)
    assert (again.imported, again.duplicates) == (0, 20)
    assert class_counts(studio, tool)["good"] == 19
    assert restore(studio, tool, report.sample_ids[:1], actor=SYSTEM) == 1
    assert class_counts(studio, tool)["good"] == 20


def test_a_manifest_with_a_damaged_deflate_stream_is_refused_clearly(studio: Studio, tmp_path: Path) -> None:
    """Found by the chaos suite's zip fuzzing: zlib's own error escaped the manifest reader."""
    from core.tools import create_tool

    create_tool(studio, "fuzzed", "good,bad", actor=SYSTEM)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.csv", "file,label,split\n" + "good/a.png,good,train\n" * 20)
    data = bytearray(buffer.getvalue())
    start = data.index(b"manifest.csv") + len("manifest.csv")
    data[start:start + 12] = bytes(12)  # the compressed stream damaged, the headers intact
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match="manifest.csv cannot be read"):
        import_path(studio, "fuzzed", path, actor=SYSTEM)


def test_a_zip_of_a_version_python_cannot_read_is_refused_clearly(studio: Studio, tmp_path: Path) -> None:
    """Found by the chaos suite's zip fuzzing: zipfile's NotImplementedError escaped import_path."""
    from core.tools import create_tool

    create_tool(studio, "fuzzed", "good,bad", actor=SYSTEM)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good/a.txt", "x")
    data = bytearray(buffer.getvalue())
    central = data.index(b"PK\x01\x02")
    data[central + 6:central + 8] = (148).to_bytes(2, "little")  # "version needed to extract": 14.8
    path = tmp_path / "future.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match="future.zip is damaged and cannot be opened"):
        import_path(studio, "fuzzed", path, actor=SYSTEM)
