"""Issue 16: regression tests of each numbered item (every one of them failed on the code before the fix)
and of ``store check``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from core.audit import SYSTEM
from core.config import Settings
from core.errors import InvalidInputError
from core.images import MAX_FILE_BYTES, decode_image
from core.mvtec import import_mvtec
from core.samples import Candidate, add_images, import_path
from core.store_check import check_store
from core.studio import Studio, open_studio
from core.thumbnails import thumbnail_store
from core.tools import create_tool
from storage import store_lock
from storage.tables import Sample

ROOT = Path(__file__).resolve().parents[2]


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def distinct_images(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [png(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)) for _ in range(n)]


def candidates(images: list[bytes], label: str = "good") -> list[Candidate]:
    return [Candidate(f"img{i}.png", label, lambda b=b: b) for i, b in enumerate(images)]


def rows(studio: Studio) -> list[Sample]:
    with studio.transaction() as session:
        return list(session.scalars(select(Sample).order_by(Sample.id)))


def rows_without_image(studio: Studio) -> list[int]:
    return [r.id for r in rows(studio) if not studio.images.exists(r.image_key)
            or not thumbnail_store(studio).exists(r.thumb_key)]


# --- item 1: two imports at once never delete each other's images ------------------------------------
def test_item1_a_cancelled_import_keeps_the_files_another_tools_import_recorded(studio: Studio) -> None:
    """Import A into tool one is cancelled while import B of the same files into tool two commits: A's
    in-flight files are B's samples now. Before the fix A unlinked them ("created by me")."""
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    create_tool(studio, "two", "good,bad", actor=SYSTEM)
    images = distinct_images(40)
    cancel = threading.Event()
    other: dict[str, object] = {}

    def progress(done: int, total: int) -> None:
        if done == 1:
            time.sleep(0.5)  # A's workers have written the files of the window ahead
            other["report"] = add_images(studio, "two", candidates(images), actor=SYSTEM)
            cancel.set()

    report = add_images(studio, "one", candidates(images), progress=progress, cancel=cancel, actor=SYSTEM)
    assert report.cancelled and other["report"].imported == 40  # type: ignore[attr-defined]
    assert rows_without_image(studio) == []
    assert check_store(studio).problems == 0


def test_item1_two_imports_of_the_same_files_into_one_tool_lose_nothing(studio: Studio) -> None:
    """B records the same files while A has them staged; A's rows then collide (IntegrityError) and
    before the fix A removed "its" files, which B's rows point to."""
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    images = distinct_images(20, seed=1)

    def progress(done: int, total: int) -> None:
        if done == 1:
            time.sleep(0.3)
            add_images(studio, "one", candidates(images), actor=SYSTEM)

    add_images(studio, "one", candidates(images), progress=progress, actor=SYSTEM)
    assert len(rows(studio)) == 20
    assert rows_without_image(studio) == []
    assert check_store(studio).problems == 0


def test_item1_an_import_alone_still_removes_what_it_did_not_record(studio: Studio) -> None:
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    cancel = threading.Event()
    report = add_images(studio, "one", candidates(distinct_images(30, seed=2)), cancel=cancel,
                        progress=lambda done, total: cancel.set() if done == 3 else None, actor=SYSTEM)
    assert report.cancelled
    assert check_store(studio).findings == 0  # nothing unreferenced left behind


def test_item1_an_import_beside_a_writer_leaves_unrecorded_files_to_the_store_check(studio: Studio) -> None:
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    cancel = threading.Event()
    with store_lock.shared(studio.settings.locks_dir):  # another writer is in flight
        add_images(studio, "one", candidates(distinct_images(30, seed=3)), cancel=cancel,
                   progress=lambda done, total: cancel.set() if done == 3 else None, actor=SYSTEM)
    found = check_store(studio)
    assert found.problems == 0 and found.unreferenced_files  # left, not deleted under the other writer
    kept = check_store(studio, repair=True)  # younger than the grace period: kept
    assert kept.kept_young == len(found.unreferenced_files) and kept.repaired["files"] == 0
    check_store(studio, repair=True, grace_seconds=0)
    assert check_store(studio).findings == 0


# --- store check ------------------------------------------------------------------------------------
def test_store_check_finds_and_repairs_safely(studio: Studio) -> None:
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    report = add_images(studio, "one", candidates(distinct_images(4, seed=4)), actor=SYSTEM)
    assert check_store(studio).findings == 0
    first, second, third, _ = rows(studio)
    studio.images.delete(first.image_key)  # a row without its image: a problem, never "repaired" away
    thumbnail_store(studio).delete(second.thumb_key)  # a missing thumbnail: repairable
    studio.images.put(b"not referenced", "png")  # garbage
    (studio.images.root / "ab").mkdir(exist_ok=True)
    (studio.images.root / "ab" / ".tmp-999999999-x.part").write_bytes(b"half")  # a dead writer's temp file
    orphan = studio.settings.models_dir / "one" / "deadbeef"
    orphan.mkdir(parents=True)
    (orphan / "model.json").write_text("{}")
    found = check_store(studio)
    assert found.samples_without_image == [first.id]
    assert found.samples_without_thumbnail == [second.id]
    assert len(found.unreferenced_files) == 1 and len(found.partial_files) == 1
    assert found.orphan_artifact_folders == ["one/deadbeef"]
    assert any("samples delete" in line for line in found.advice())
    repaired = check_store(studio, repair=True, grace_seconds=0)
    assert repaired.repaired == {"files": 1, "partial_files": 1, "artifact_folders": 1, "thumbnails": 1}
    after = check_store(studio)
    assert after.samples_without_image == [first.id] and after.findings == 1
    assert studio.images.exists(third.image_key)  # referenced files are never touched
    assert len(report.sample_ids) == 4


def test_store_check_repair_waits_for_writers(studio: Studio) -> None:
    studio.images.put(b"garbage", "png")
    with store_lock.shared(studio.settings.locks_dir):
        report = check_store(studio, repair=True, grace_seconds=0, lock_timeout=0.2)
    assert report.notes and report.repaired == {} and len(report.unreferenced_files) == 1


def test_store_check_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    studio = open_studio(Settings(data, f"sqlite:///{data / 'studio.db'}"))
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    add_images(studio, "one", candidates(distinct_images(2, seed=5)), actor=SYSTEM)
    env = {**os.environ, "STUDIO_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    ok = subprocess.run([sys.executable, "-m", "core", "store", "check"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and '"problems": 0' in ok.stdout
    studio.images.delete(rows(studio)[0].image_key)
    bad = subprocess.run([sys.executable, "-m", "core", "store", "check", "--repair"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "samples delete" in bad.stderr


# --- item 2: manifest.csv is read with a cap --------------------------------------------------------
def test_item2_a_huge_manifest_is_refused_unread(studio: Studio, tmp_path: Path) -> None:
    import core.export

    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("good/a.png", png(np.zeros((4, 4, 3), np.uint8)))
        with out.open("manifest.csv", "w") as manifest:  # 80 MB of zeros, a few hundred KB compressed
            chunk = b"\0" * (1 << 20)
            for _ in range(80):
                manifest.write(chunk)
    assert core.export.MAX_MANIFEST_BYTES < 80 << 20
    with pytest.raises(InvalidInputError, match="manifest.csv is larger than"):
        import_path(studio, "one", archive, actor=SYSTEM)


def test_item2_a_manifest_that_lies_about_its_size_is_refused(studio: Studio, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import core.export

    monkeypatch.setattr(core.export, "MAX_MANIFEST_BYTES", 1000)
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    archive = tmp_path / "lie.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("good/a.png", png(np.zeros((4, 4, 3), np.uint8)))
        out.writestr("manifest.csv", "file,label\n" + "good/a.png,good\n" * 200)
    with pytest.raises(InvalidInputError, match="larger than"):
        import_path(studio, "one", archive, actor=SYSTEM)


# --- item 4: encrypted members and unknown compression are rejected one by one ----------------------
def _patch_member(archive: Path, name: str, flag_bits: int | None = None, method: int | None = None) -> None:
    """Rewrite the local and central headers of ``name`` (an encrypted flag, another compression)."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(name)
    local = info.header_offset
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = int.from_bytes(data[central + 28:central + 30], "little")
        if data[central + 46:central + 46 + name_len].decode() == name:
            break
        central = data.find(b"PK\x01\x02", central + 4)
    for offset, flag_at, method_at in ((local, 6, 8), (central, 8, 10)):
        if flag_bits is not None:
            data[offset + flag_at:offset + flag_at + 2] = flag_bits.to_bytes(2, "little")
        if method is not None:
            data[offset + method_at:offset + method_at + 2] = method.to_bytes(2, "little")
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize(("flags", "method", "reason"),
                         [(0x1, None, "encrypted"), (None, 99, "unsupported zip compression")])
def test_item4_an_unreadable_member_is_rejected_and_the_rest_imported(studio: Studio, tmp_path: Path, flags: int | None,
                                                                      method: int | None, reason: str) -> None:
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    archive = tmp_path / "mixed.zip"
    images = distinct_images(3, seed=6)
    with zipfile.ZipFile(archive, "w") as out:
        for index, data in enumerate(images):
            out.writestr(f"good/{index}.png", data)
    _patch_member(archive, "good/1.png", flag_bits=flags, method=method)
    report = import_path(studio, "one", archive, actor=SYSTEM)
    assert report.imported == 2
    [(name, why)] = report.rejected
    assert name == "good/1.png" and reason in why


# --- item 5 is in tests/models/test_projection_identical.py -------------------------------------------
# --- item 7 ------------------------------------------------------------------------------------------
def test_item7_a_float_tiff_with_nan_and_inf_keeps_its_picture() -> None:
    ramp = np.tile(np.linspace(0.0, 1.0, 32, dtype=np.float32), (16, 1))
    ramp[0, 0], ramp[0, 1], ramp[0, 2] = np.nan, np.inf, -np.inf
    buffer = io.BytesIO()
    Image.fromarray(ramp, mode="F").save(buffer, format="TIFF")
    rgb = decode_image(buffer.getvalue()).rgb
    assert rgb[8, 31, 0] == 255 and rgb[8, 0, 0] == 0 and rgb[8, 16, 0] in range(120, 136)
    assert rgb[0, 1, 0] == 255  # +inf: the brightest finite value
    empty = io.BytesIO()
    Image.fromarray(np.full((4, 4), np.nan, np.float32), mode="F").save(empty, format="TIFF")
    with pytest.raises(ValueError, match="no finite pixel"):
        decode_image(empty.getvalue())


def test_item7_predict_reads_no_more_than_the_size_limit(tmp_path: Path) -> None:
    from core.cli import _read

    big = tmp_path / "big.png"
    with open(big, "wb") as handle:  # sparse: 200 MB on paper, nothing on disk
        handle.truncate(200 * 1024 * 1024)
    data = _read(str(big))
    assert data is not None and len(data) == MAX_FILE_BYTES + 1


def test_item7_a_fifo_as_the_import_path_is_refused_at_once(studio: Studio, tmp_path: Path) -> None:
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            import_path(studio, "one", fifo, actor=SYSTEM)
        except BaseException as error:  # noqa: BLE001
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the old code's open() so the thread ends
        with open(fifo, "wb"):
            pass
        pytest.fail("importing a FIFO hangs")
    assert isinstance(outcome.get("error"), InvalidInputError) and "not a regular file" in str(outcome["error"])


def test_item7_a_corrupt_database_gives_a_message_not_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "studio.db").write_bytes(b"this is no database " * 300)
    env = {**os.environ, "STUDIO_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "core", "tools", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "damaged" in result.stderr and "backup" in result.stderr


def test_item7_a_newline_in_a_file_name_stays_on_one_line(studio: Studio, tmp_path: Path) -> None:
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    folder = tmp_path / "in" / "good"
    folder.mkdir(parents=True)
    (folder / "two\nlines.png").write_bytes(b"not an image")
    report = import_path(studio, "one", tmp_path / "in", actor=SYSTEM)
    [(name, _)] = report.rejected
    assert "\n" not in name and name == "good/two\\x0alines.png"


def test_item7_files_in_hidden_folders_are_not_imported(studio: Studio, tmp_path: Path) -> None:
    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    first, second, third = distinct_images(3, seed=7)
    (tmp_path / "in" / "good" / ".thumbs").mkdir(parents=True)
    (tmp_path / "in" / ".git" / "good").mkdir(parents=True)
    (tmp_path / "in" / "good" / "ok.png").write_bytes(first)
    (tmp_path / "in" / "good" / ".thumbs" / "x.png").write_bytes(second)
    (tmp_path / "in" / ".git" / "good" / "y.png").write_bytes(third)
    report = import_path(studio, "one", tmp_path / "in", actor=SYSTEM)
    assert (report.imported, report.rejected) == (1, [])
    archive = tmp_path / "hidden.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("good/.cache/z.png", second)
        out.writestr("good/fine.png", third)
    assert (import_path(studio, "one", archive, actor=SYSTEM).imported, len(rows(studio))) == (1, 2)


def test_item7_one_bad_mvtec_class_folder_refuses_only_its_files(studio: Studio, tmp_path: Path) -> None:
    create_tool(studio, "one", "good", actor=SYSTEM)
    root = tmp_path / "cat"
    images = iter(distinct_images(4, seed=8))
    for folder in ("train/good", "test/crack", "test/bad colour!"):
        (root / folder).mkdir(parents=True)
        (root / folder / "000.png").write_bytes(next(images))
    report = import_mvtec(studio, "one", root, actor=SYSTEM)
    assert report.imported == 2
    [(name, reason)] = report.rejected
    assert name == "test/bad colour!/000.png" and "rename the folder" in reason
    with studio.transaction() as session:
        from core.tools import require_tool
        assert require_tool(session, "one").class_names == ["good", "crack"]


# --- item 8: localhost by default ----------------------------------------------------------------
def test_item8_the_server_listens_on_localhost_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import serve
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    monkeypatch.delenv("STREAMLIT_SERVER_ADDRESS", raising=False)
    assert serve.streamlit_options([]) == ["--server.address", "localhost"]
    assert serve.streamlit_options(["--server.address", "0.0.0.0"]) == ["--server.address", "0.0.0.0"]
    assert serve.streamlit_options(["--server.address=0.0.0.0"]) == ["--server.address=0.0.0.0"]


# --- item 6: orphans of killed work are collected by store check --repair ----------------------------
def test_item6_orphan_artifact_folders_and_killed_import_files_are_collected_safely(studio: Studio) -> None:
    from core.training import training_lock

    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    folder = studio.settings.models_dir / "one" / "0123abcd"  # saved, then killed before its version row
    folder.mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(b"x")
    key, _ = studio.images.put(b"a killed import's file", "png")  # written, then killed before its row
    assert check_store(studio, repair=True).kept_young == 2  # young: a commit may still be coming
    old = time.time() - 7200
    os.utime(folder, (old, old))
    os.utime(studio.images.path(key), (old, old))
    with training_lock(studio, "one"):  # a training of that tool runs: its folder may be the new one
        during = check_store(studio, repair=True)
    assert (during.repaired["artifact_folders"], during.repaired["files"]) == (0, 1)
    repaired = check_store(studio, repair=True)
    assert repaired.repaired["artifact_folders"] == 1
    assert not folder.exists() and not studio.images.exists(key)
    assert check_store(studio).findings == 0


def test_item1_export_of_a_sample_that_lost_its_file_says_what_to_do(studio: Studio, tmp_path: Path) -> None:
    from core.errors import StudioError
    from core.export import export_dataset

    create_tool(studio, "one", "good,bad", actor=SYSTEM)
    add_images(studio, "one", candidates(distinct_images(3, seed=9)), actor=SYSTEM)
    studio.images.delete(rows(studio)[1].image_key)  # lost before the fix (or by hand)
    with pytest.raises(StudioError, match="store check"):
        export_dataset(studio, "one", tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()
