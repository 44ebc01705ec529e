"""core.samples and core.images: importing labelled images from folders, zips and uploads.

Real ELPV cells plus PNG / JPEG / BMP / 16-bit TIFF files written with PIL; every rejection
must leave the database and the image store exactly as they were.
"""

from __future__ import annotations

import io
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

import core.images
from core.audit import SYSTEM
from core.errors import InvalidInputError, NotFoundError
from core.images import ImageRejectedError, decode_image
from core.samples import Candidate, add_images, class_counts, import_path, recent_samples
from core.studio import Studio
from core.tools import create_tool
from storage.tables import Sample

TOOL = "cells"


# --- helpers -------------------------------------------------------------------------------------
def image_bytes(fmt: str, size: tuple[int, int] = (24, 16), seed: int = 0, **save: object) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def tiff16_bytes(size: tuple[int, int] = (20, 10)) -> bytes:
    ramp = np.linspace(1000, 60000, size[0] * size[1]).reshape(size[1], size[0]).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="TIFF")
    return buffer.getvalue()


def sample_rows(studio: Studio) -> list[tuple[str, str, str, int, int]]:
    with studio.transaction() as session:
        rows = session.execute(select(Sample.sha256, Sample.label, Sample.source, Sample.width, Sample.height)
                               .order_by(Sample.id))
        return [tuple(r) for r in rows]


def stored_files(studio: Studio) -> list[Path]:
    root = studio.images.root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def snapshot(studio: Studio) -> tuple[list[tuple[str, str, str, int, int]], list[Path]]:
    return sample_rows(studio), stored_files(studio)


def elpv_files(elpv_subset: Path, label: str) -> list[Path]:
    return sorted((elpv_subset / label).glob("*.png"))


@pytest.fixture
def tool(studio: Studio) -> str:
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    return TOOL


# --- folders and zips ----------------------------------------------------------------------------
def test_folder_with_class_subfolders(studio: Studio, tool: str, elpv_subset: Path) -> None:
    seen: list[tuple[int, int]] = []
    report = import_path(studio, tool, elpv_subset, progress=lambda done, total: seen.append((done, total)),
        actor=SYSTEM)
    assert report.imported == 40 and report.duplicates == 0
    # SOURCE.md sits at the top without a class folder: rejected for that reason only
    assert [name for name, _ in report.rejected] == ["SOURCE.md"]
    assert "no label" in report.rejected[0][1]
    assert class_counts(studio, tool) == {"good": 20, "defective": 20}
    assert seen[-1] == (41, 41) and len(seen) == 41

    rows = sample_rows(studio)
    assert {(label, source, w, h) for _, label, source, w, h in rows} == {
        ("good", "import", 300, 300), ("defective", "import", 300, 300)}
    files = stored_files(studio)
    assert len(files) == 40
    for sha, *_ in rows:  # every sample's image is in the store, byte for byte one of the inputs
        assert studio.images.exists(studio.images.key_for(sha, "png"))
    original = (elpv_files(elpv_subset, "good")[0]).read_bytes()
    assert original in {f.read_bytes() for f in files}


def test_flat_folder_with_label(studio: Studio, tool: str, elpv_subset: Path) -> None:
    report = import_path(studio, tool, elpv_subset / "defective", label="Defective", actor=SYSTEM)
    assert (report.imported, report.duplicates, report.rejected) == (20, 0, [])
    assert class_counts(studio, tool) == {"good": 0, "defective": 20}


def test_flat_folder_without_label_rejects_every_file(studio: Studio, tool: str, elpv_subset: Path) -> None:
    report = import_path(studio, tool, elpv_subset / "good", actor=SYSTEM)
    assert report.imported == 0 and len(report.rejected) == 20
    assert all("no label" in reason for _, reason in report.rejected)
    assert snapshot(studio) == ([], [])


def test_zip_with_class_folders_and_flat_zip_with_label(studio: Studio, tool: str, elpv_subset: Path,
                                                        tmp_path: Path) -> None:
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as archive:
        for label in ("good", "defective"):
            for path in elpv_files(elpv_subset, label)[:5]:
                archive.write(path, f"dataset/{label}/{path.name}")
        archive.writestr("dataset/.DS_Store", b"junk")
        archive.writestr("__MACOSX/dataset/good/._x.png", b"junk")
    report = import_path(studio, tool, nested, actor=SYSTEM)
    assert (report.imported, report.duplicates, report.rejected) == (10, 0, [])
    assert class_counts(studio, tool) == {"good": 5, "defective": 5}

    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(flat, "w") as archive:
        for path in elpv_files(elpv_subset, "good")[5:9]:
            archive.write(path, path.name)
    report = import_path(studio, tool, flat, label="good", actor=SYSTEM)
    assert (report.imported, report.rejected) == (4, [])
    assert class_counts(studio, tool) == {"good": 9, "defective": 5}
    assert {source for _, _, source, _, _ in sample_rows(studio)} == {"import"}
    assert len(stored_files(studio)) == 14


def test_duplicates_are_skipped(studio: Studio, tool: str, elpv_subset: Path, tmp_path: Path) -> None:
    import_path(studio, tool, elpv_subset / "good", label="good", actor=SYSTEM)
    before = snapshot(studio)

    again = import_path(studio, tool, elpv_subset / "good", label="good", actor=SYSTEM)
    assert (again.imported, again.duplicates, again.rejected) == (0, 20, [])

    # the same bytes under another name and another label are still the same image
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(elpv_files(elpv_subset, "good")[0], copy / "renamed.png")
    shutil.copy(elpv_files(elpv_subset, "defective")[0], copy / "new.png")
    report = import_path(studio, tool, copy, label="defective", actor=SYSTEM)
    assert (report.imported, report.duplicates) == (1, 1)
    rows = sample_rows(studio)
    assert rows[:20] == before[0]
    assert class_counts(studio, tool) == {"good": 20, "defective": 1}
    assert len(stored_files(studio)) == 21


def test_duplicates_within_one_batch(studio: Studio, tool: str) -> None:
    data = image_bytes("PNG", seed=7)
    report = add_images(studio, tool, [Candidate("a.png", "good", lambda: data),
                                       Candidate("b.png", "defective", lambda: data)], actor=SYSTEM)
    assert (report.imported, report.duplicates) == (1, 1)
    assert [r[1] for r in sample_rows(studio)] == ["good"]


# --- every supported format ----------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "ext"), [("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("TIFF", "tif")])
def test_supported_formats_are_imported(studio: Studio, tool: str, tmp_path: Path, fmt: str, ext: str) -> None:
    folder = tmp_path / "in" / "good"
    folder.mkdir(parents=True)
    data = image_bytes(fmt, size=(24, 16))
    (folder / f"part.{ext}").write_bytes(data)
    report = import_path(studio, tool, tmp_path / "in", actor=SYSTEM)
    assert (report.imported, report.rejected) == (1, [])
    [(sha, label, _, width, height)] = sample_rows(studio)
    assert (label, width, height) == ("good", 24, 16)
    key = studio.images.key_for(sha, ext)
    assert studio.images.read(key) == data  # the original bytes are kept, with their format's extension


def test_16_bit_tiff_is_rescaled_to_8_bit(studio: Studio, tool: str, tmp_path: Path) -> None:
    data = tiff16_bytes((20, 10))
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    decoded = decode_image(data)
    assert decoded.ext == "tif"
    assert decoded.rgb.shape == (10, 20, 3) and decoded.rgb.dtype == np.uint8
    assert decoded.rgb.min() == 0 and decoded.rgb.max() == 255  # the full 16-bit range is used
    assert (decoded.rgb[..., 0] == decoded.rgb[..., 2]).all()
    assert decoded.rgb[0, 0, 0] < decoded.rgb[5, 10, 0] < decoded.rgb[9, 19, 0]  # the ramp survives

    path = tmp_path / "deep.tif"
    path.write_bytes(data)
    report = import_path(studio, tool, path, label="good", actor=SYSTEM)
    assert report.imported == 1
    assert sample_rows(studio)[0][3:] == (20, 10)


def test_exif_orientation_is_honoured(studio: Studio, tool: str) -> None:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high: left half red, right half blue
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).size == (40, 20)

    decoded = decode_image(data)
    assert (decoded.width, decoded.height) == (20, 40)
    top, bottom = decoded.rgb[5, 10], decoded.rgb[35, 10]
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60

    report = add_images(studio, tool, [Candidate("phone.jpg", "good", lambda: data)], actor=SYSTEM)
    assert report.imported == 1
    assert sample_rows(studio)[0][3:] == (20, 40)


# --- rejected files ------------------------------------------------------------------------------
def test_bad_files_are_rejected_with_reasons_and_change_nothing(studio: Studio, tool: str, tmp_path: Path,
                                                                elpv_subset: Path) -> None:
    import_path(studio, tool, elpv_subset / "good", label="good", actor=SYSTEM)
    before = snapshot(studio)

    png = image_bytes("PNG", size=(64, 64), seed=3)
    folder = tmp_path / "bad" / "good"
    folder.mkdir(parents=True)
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "text.png").write_text("this is not an image\n")
    (folder / "empty.png").write_bytes(b"")
    (folder / "anim.png").write_bytes(image_bytes("GIF", seed=4))
    (tmp_path / "bad" / "scratch").mkdir()
    (tmp_path / "bad" / "scratch" / "valid.png").write_bytes(png)

    report = import_path(studio, tool, tmp_path / "bad", actor=SYSTEM)
    reasons = dict(report.rejected)
    assert report.imported == 0 and report.duplicates == 0
    assert set(reasons) == {"good/truncated.png", "good/text.png", "good/empty.png", "good/anim.png",
                            "scratch/valid.png"}
    assert "truncated" in reasons["good/truncated.png"]
    assert "not an image" in reasons["good/text.png"]
    assert reasons["good/empty.png"] == "empty file"
    assert "unsupported format GIF" in reasons["good/anim.png"]
    assert "'scratch' is not a class" in reasons["scratch/valid.png"]
    assert snapshot(studio) == before


def test_good_files_next_to_bad_ones_are_still_imported(studio: Studio, tool: str, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a_ok.png").write_bytes(image_bytes("PNG", seed=1))
    (folder / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (folder / "c_ok.bmp").write_bytes(image_bytes("BMP", seed=2))
    report = import_path(studio, tool, folder, label="defective", actor=SYSTEM)
    assert report.imported == 2
    assert [name for name, _ in report.rejected] == ["b_broken.png"]
    assert len(stored_files(studio)) == 2


def test_label_that_is_not_a_class(studio: Studio, tool: str, elpv_subset: Path) -> None:
    report = import_path(studio, tool, elpv_subset / "good", label="scratch", actor=SYSTEM)
    assert report.imported == 0 and len(report.rejected) == 20
    assert all(reason == "label 'scratch' is not a class of this tool (good, defective)"
               for _, reason in report.rejected)
    assert snapshot(studio) == ([], [])


def test_image_larger_than_max_pixels_is_refused(studio: Studio, tool: str, elpv_subset: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.images, "MAX_PIXELS", 300 * 300 - 1)
    report = import_path(studio, tool, elpv_subset / "good", label="good", actor=SYSTEM)
    assert report.imported == 0 and len(report.rejected) == 20
    assert all("image too large (300 x 300 pixels" in reason for _, reason in report.rejected)
    assert snapshot(studio) == ([], [])

    monkeypatch.setattr(core.images, "MAX_PIXELS", 300 * 300)  # exactly at the limit is fine
    assert import_path(studio, tool, elpv_subset / "good", label="good", actor=SYSTEM).imported == 20


def test_decode_image_reasons() -> None:
    with pytest.raises(ImageRejectedError, match="empty file"):
        decode_image(b"")
    with pytest.raises(ImageRejectedError, match="not an image"):
        decode_image(b"%PDF-1.4 definitely not a picture")
    png = image_bytes("PNG", size=(32, 32))
    with pytest.raises(ImageRejectedError, match="damaged or truncated"):
        decode_image(png[:-40])
    decoded = decode_image(png)
    assert decoded.ext == "png" and decoded.rgb.shape == (32, 32, 3)


def test_file_larger_than_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    png = image_bytes("PNG", size=(32, 32))
    monkeypatch.setattr(core.images, "MAX_FILE_BYTES", len(png) - 1)
    with pytest.raises(ImageRejectedError, match="file larger than"):
        decode_image(png)


# --- refused inputs ------------------------------------------------------------------------------
def test_empty_folder_is_invalid_input(studio: Studio, tool: str, tmp_path: Path) -> None:
    (tmp_path / "empty" / "good").mkdir(parents=True)
    (tmp_path / "empty" / ".hidden").write_bytes(image_bytes("PNG"))
    with pytest.raises(InvalidInputError, match="holds no files"):
        import_path(studio, tool, tmp_path / "empty", actor=SYSTEM)
    assert snapshot(studio) == ([], [])


def test_missing_path_and_unknown_file_type(studio: Studio, tool: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        import_path(studio, tool, tmp_path / "nowhere", actor=SYSTEM)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(InvalidInputError, match="neither a folder"):
        import_path(studio, tool, notes, actor=SYSTEM)
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("only/", b"")
    with pytest.raises(InvalidInputError, match="holds no files"):
        import_path(studio, tool, empty_zip, actor=SYSTEM)
    assert snapshot(studio) == ([], [])


def test_unknown_tool(studio: Studio, tool: str, elpv_subset: Path) -> None:
    with pytest.raises(NotFoundError, match="tools: cells"):
        import_path(studio, "nope", elpv_subset, actor=SYSTEM)
    assert snapshot(studio) == ([], [])


def _zip_with(path: Path, good_png: bytes, evil: zipfile.ZipInfo, evil_data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("good/first.png", good_png)  # a harmless member before the bad one
        archive.writestr(evil, evil_data)
    return path


@pytest.mark.parametrize(("member", "message"), [
    ("../evil.png", "unsafe path"),
    ("good/../../evil.png", "unsafe path"),
    ("/abs/evil.png", "unsafe path"),
    ("\\evil.png", "unsafe path"),
])
def test_zip_with_unsafe_paths_is_refused(studio: Studio, tool: str, tmp_path: Path, member: str,
                                          message: str) -> None:
    png = image_bytes("PNG", seed=11)
    archive = _zip_with(tmp_path / "evil.zip", png, zipfile.ZipInfo(member), image_bytes("PNG", seed=12))
    with zipfile.ZipFile(archive) as check:  # the archive really carries the unsafe name
        assert member in check.namelist()
    with pytest.raises(InvalidInputError, match=message):
        import_path(studio, tool, archive, label="good", actor=SYSTEM)
    assert snapshot(studio) == ([], [])
    assert not (tmp_path / "evil.png").exists() and not Path("/abs/evil.png").exists()


def test_zip_with_a_symlink_is_refused(studio: Studio, tool: str, tmp_path: Path) -> None:
    link = zipfile.ZipInfo("good/link.png")
    link.create_system = 3  # unix
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _zip_with(tmp_path / "link.zip", image_bytes("PNG", seed=13), link, b"/etc/passwd")
    with pytest.raises(InvalidInputError, match="symbolic link"):
        import_path(studio, tool, archive, actor=SYSTEM)
    assert snapshot(studio) == ([], [])


def test_zip_expanding_too_much_is_refused(studio: Studio, tool: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import core.samples

    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("good/a.png", image_bytes("PNG", seed=1))
        out.writestr("good/b.bin", b"\0" * 100_000)
    monkeypatch.setattr(core.samples, "MAX_ZIP_EXPANDED_BYTES", 50_000)
    with pytest.raises(InvalidInputError, match="zip bomb"):
        import_path(studio, tool, archive, actor=SYSTEM)
    monkeypatch.setattr(core.samples, "MAX_ZIP_MEMBERS", 1)
    with pytest.raises(InvalidInputError, match="at most 1 are accepted"):
        import_path(studio, tool, archive, actor=SYSTEM)
    assert snapshot(studio) == ([], [])


# --- uploads -------------------------------------------------------------------------------------
def test_add_images_from_uploads_records_source(studio: Studio, tool: str) -> None:
    first, second = image_bytes("PNG", seed=21), image_bytes("JPEG", seed=22)
    report = add_images(studio, tool, [Candidate("cam1.png", "good", lambda: first),
                                       Candidate("cam2.jpg", " DEFECTIVE ", lambda: second)], source="capture",
                                           actor=SYSTEM)
    assert (report.imported, report.rejected) == (2, [])
    assert report.as_dict() == {"imported": 2, "skipped_duplicates": 0, "rejected": [], "near_duplicates": [],
                                "cancelled": False}
    recent = recent_samples(studio, tool)
    assert [(s.label, s.source) for s in recent] == [("defective", "capture"), ("good", "capture")]
    assert studio.images.read(recent[1].image_key) == first


def test_unreadable_upload_is_rejected(studio: Studio, tool: str) -> None:
    def unreadable() -> bytes:
        raise PermissionError(13, "Permission denied")

    report = add_images(studio, tool, [Candidate("locked.png", "good", unreadable)], actor=SYSTEM)
    assert report.rejected == [("locked.png", "cannot read file (Permission denied)")]
    assert snapshot(studio) == ([], [])
