"""MVTec AD layout import (masks kept with their samples), and export -> import round trip equality."""

from __future__ import annotations

import csv
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from core.audit import SYSTEM
from core.dataset import DatasetFilter, browse, delete, set_split
from core.errors import InvalidInputError
from core.export import ExportCancelledError, export_dataset
from core.images import decode_image
from core.mvtec import import_mvtec
from core.samples import class_counts, import_path
from core.studio import Studio
from core.tools import add_class, create_tool, get_tool
from storage.tables import Sample


def cells(elpv_subset: Path, label: str) -> list[Path]:
    return sorted((elpv_subset / label).glob("*.png"))


def crack_mask(seed: int) -> np.ndarray:
    """A 300 x 300 binary mask (0 / 255) with one random rectangle."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((300, 300), np.uint8)
    x, y = rng.integers(0, 200, 2)
    mask[y : y + 60, x : x + 40] = 255
    return mask


@pytest.fixture
def mvtec(tmp_path: Path, elpv_subset: Path) -> Path:
    """An MVTec AD category folder of real ELPV cells: 6 train/good, 2 test/good, 3 test/crack
    (two with masks in ground_truth/crack, one without), 2 test/finger with masks."""
    root = tmp_path / "solar"
    good, defective = cells(elpv_subset, "good"), cells(elpv_subset, "defective")
    layout = {"train/good": good[:6], "test/good": good[6:8], "test/crack": defective[:3],
              "test/finger": defective[3:5]}
    for folder, paths in layout.items():
        (root / folder).mkdir(parents=True)
        for index, path in enumerate(paths):
            (root / folder / f"{index:03d}.png").write_bytes(path.read_bytes())
    for defect, count in (("crack", 2), ("finger", 2)):
        (root / "ground_truth" / defect).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(crack_mask(index + len(defect))).save(
                root / "ground_truth" / defect / f"{index:03d}_mask.png")
    return root


def samples(studio: Studio, tool: str = "solar") -> list[Sample]:
    with studio.transaction() as session:
        tool_id = get_tool(studio, tool).id
        return list(session.scalars(select(Sample).where(Sample.tool_id == tool_id).order_by(Sample.id)))


def test_mvtec_layout_with_masks(studio: Studio, mvtec: Path) -> None:
    create_tool(studio, "solar", "good", actor=SYSTEM)
    report = import_mvtec(studio, "solar", mvtec, actor=SYSTEM)
    assert (report.imported, report.rejected) == (13, [])
    assert get_tool(studio, "solar").classes == ["good", "crack", "finger"]
    assert class_counts(studio, "solar") == {"good": 8, "crack": 3, "finger": 2}
    by_name = {s.original_name: s for s in samples(studio)}
    assert {name for name, s in by_name.items() if s.split == "train"} == {f"train/good/{i:03d}.png" for i in range(6)}
    assert all(s.split == "held_out" for name, s in by_name.items() if name.startswith("test/"))
    with_masks = {name for name, s in by_name.items() if s.mask_key}
    assert with_masks == {"test/crack/000.png", "test/crack/001.png", "test/finger/000.png", "test/finger/001.png"}
    stored = decode_image(studio.images.read(by_name["test/finger/001.png"].mask_key)).rgb[:, :, 0]
    assert np.array_equal(stored, crack_mask(1 + len("finger")))  # the right mask, pixel for pixel
    image = decode_image(studio.images.read(by_name["test/crack/000.png"].image_key)).rgb
    original = decode_image(cells_of(mvtec, "test/crack")[0].read_bytes()).rgb
    assert np.array_equal(image, original)
    assert [item.has_mask for item in browse(studio, "solar", DatasetFilter(labels=["finger"])).items] == [True, True]


def cells_of(root: Path, folder: str) -> list[Path]:
    return sorted((root / folder).glob("*.png"))


def test_mvtec_test_images_can_go_to_training_and_bad_masks_are_reported(studio: Studio, mvtec: Path) -> None:
    create_tool(studio, "solar", "good", actor=SYSTEM)
    (mvtec / "ground_truth" / "crack" / "002_mask.png").write_bytes(b"broken")
    report = import_mvtec(studio, "solar", mvtec, test_split="train", actor=SYSTEM)
    assert report.rejected == [
        ("test/crack/002.png", "its mask is unusable: not an image (or a format that is not supported)")]
    assert {s.split for s in samples(studio)} == {"train"}


def test_not_an_mvtec_folder(studio: Studio, tmp_path: Path, elpv_subset: Path) -> None:
    create_tool(studio, "solar", "good", actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="not an MVTec AD category folder"):
        import_mvtec(studio, "solar", elpv_subset, actor=SYSTEM)


def fingerprint(studio: Studio, tool: str) -> set[tuple[object, ...]]:
    """What must survive export -> import: content hash, label, split, size, name and mask content."""
    return {(s.sha256, s.label, s.split, s.width, s.height, s.original_name,
             studio.images.read(s.mask_key) if s.mask_key else None)
            for s in samples(studio, tool) if not s.deleted}


def test_export_then_import_gives_the_same_dataset(studio: Studio, mvtec: Path, elpv_subset: Path,
                                                   tmp_path: Path) -> None:
    create_tool(studio, "solar", "good,defective", actor=SYSTEM)
    import_mvtec(studio, "solar", mvtec, actor=SYSTEM)
    import_path(studio, "solar", elpv_subset / "defective", label="defective", actor=SYSTEM)
    ids = [item.id for item in browse(studio, "solar", DatasetFilter(labels=["defective"])).items]
    set_split(studio, "solar", ids[:3], "held_out", actor=SYSTEM)
    delete(studio, "solar", ids[3:5], actor=SYSTEM)  # deleted samples are not exported
    progress: list[tuple[int, int]] = []
    archive = tmp_path / "out" / "solar.zip"
    count = export_dataset(studio, "solar", archive, progress=lambda *p: progress.append(p))
    live = len([s for s in samples(studio) if not s.deleted])
    assert count == live == len(progress) and progress[-1] == (live, live)

    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        manifest = list(csv.DictReader(io.StringIO(opened.read("manifest.csv").decode())))
    assert {row["file"].split("/")[0] for row in manifest} == {"good", "crack", "finger", "defective"}
    assert ({row["file"] for row in manifest} | {row["mask"] for row in manifest if row["mask"]}
            | {"manifest.csv"}) == names
    assert len({row["sha256"] for row in manifest}) == live

    create_tool(studio, "copy", "good", actor=SYSTEM)
    for name in ("crack", "finger", "defective"):
        add_class(studio, "copy", name, actor=SYSTEM)
    report = import_path(studio, "copy", archive, actor=SYSTEM)
    assert (report.imported, report.rejected) == (live, [])
    assert fingerprint(studio, "copy") == fingerprint(studio, "solar")

    # exported again, the archive has the same files with the same bytes
    again = tmp_path / "again.zip"
    export_dataset(studio, "copy", again)
    with zipfile.ZipFile(archive) as first, zipfile.ZipFile(again) as second:
        assert {n: first.read(n) for n in names - {"manifest.csv"}} == \
               {n: second.read(n) for n in set(second.namelist()) - {"manifest.csv"}}


def test_a_tampered_archive_file_is_rejected(studio: Studio, elpv_subset: Path, tmp_path: Path) -> None:
    create_tool(studio, "solar", "good", actor=SYSTEM)
    import_path(studio, "solar", elpv_subset / "good", label="good", actor=SYSTEM)
    archive = tmp_path / "solar.zip"
    export_dataset(studio, "solar", archive)
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(tampered, "w") as target:
        manifest = list(csv.DictReader(io.StringIO(source.read("manifest.csv").decode())))
        victim = manifest[0]["file"]
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, cells(elpv_subset, "defective")[0].read_bytes() if name == victim else data)
    create_tool(studio, "copy", "good", actor=SYSTEM)
    report = import_path(studio, "copy", tampered, actor=SYSTEM)
    assert report.imported == 19
    assert report.rejected == [(victim, f"cannot read file ({victim} does not match the sha256 in manifest.csv)")]


def test_a_cancelled_export_writes_no_archive(studio: Studio, elpv_subset: Path, tmp_path: Path) -> None:
    create_tool(studio, "solar", "good", actor=SYSTEM)
    import_path(studio, "solar", elpv_subset / "good", label="good", actor=SYSTEM)
    cancel = threading.Event()
    with pytest.raises(ExportCancelledError):
        export_dataset(studio, "solar", tmp_path / "x.zip", cancel=cancel,
                       progress=lambda done, total: cancel.set() if done == 3 else None)
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]  # no archive, no temporary file


def test_a_zipped_mvtec_category_is_imported_like_the_folder(studio: Studio, mvtec: Path, tmp_path: Path) -> None:
    archive = tmp_path / "solar.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(mvtec.rglob("*")):
            if path.is_file():
                out.write(path, f"mvtec/solar/{path.relative_to(mvtec).as_posix()}")
    create_tool(studio, "folder", "good", actor=SYSTEM)
    import_mvtec(studio, "folder", mvtec, actor=SYSTEM)
    create_tool(studio, "zipped", "good", actor=SYSTEM)
    report = import_path(studio, "zipped", archive, actor=SYSTEM)
    assert (report.imported, report.rejected) == (13, [])
    assert get_tool(studio, "zipped").classes == ["good", "crack", "finger"]
    assert fingerprint(studio, "zipped") == fingerprint(studio, "folder")  # masks, splits and names alike
