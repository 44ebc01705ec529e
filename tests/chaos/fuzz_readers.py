"""Property-based fuzzing of the two readers of user files: ``python -m tests.chaos.fuzz_readers N``.

* **image reader** ``core.images.decode_image``: random bytes and mutated real PNG / JPEG / BMP / TIFF
  files (bit flips, overwritten bytes, truncation, inserted junk; 8-bit, 16-bit, float, palette, RGBA);
* **zip reader** ``core.samples.import_path`` on a ``.zip``: random bytes, mutated real zips (class
  folders, an exported dataset with ``manifest.csv``, an MVTec AD category), and zips built from random
  member names (``..``, absolute, backslashes, hidden, unicode) and random contents or manifests.

Property: a clean rejection (``ImageRejectedError``; ``InvalidInputError`` or per-file reasons in the
import report) or a valid result (an ``(H, W, 3)`` uint8 image; samples whose files exist), never
another exception, never longer than ``HANG_SECONDS`` for one input (an alarm interrupts it), and the
process's peak memory is reported. Runs in its own process so that its peak RSS is its own. Prints one
JSON line: inputs per reader, outcomes, slowest input, peak RSS; exits 1 on a failure.
"""

from __future__ import annotations

import io
import json
import resource
import signal
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.audit import SYSTEM

HANG_SECONDS = 10


class Hang(Exception):
    pass


def _alarm(*_: object) -> None:
    raise Hang(f"one input took more than {HANG_SECONDS} s")


# --- seeds -----------------------------------------------------------------------------------------
def _encode(array: np.ndarray, fmt: str, mode: str | None = None, **options: object) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array, mode=mode) if mode else Image.fromarray(array)
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def image_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (10, 10), dtype=np.uint8)
    seeds = [_encode(rgb, "PNG"), _encode(gray, "PNG"), _encode(rgb, "JPEG", quality=80),
             _encode(rgb, "JPEG", progressive=True), _encode(rgb, "BMP"), _encode(rgb, "TIFF"),
             _encode(gray, "TIFF", compression="tiff_lzw"),
             _encode((gray.astype(np.uint16) * 257), "PNG"),
             _encode(rng.random((8, 8), dtype=np.float32), "TIFF", mode="F"),
             _encode(np.dstack([rgb, rgb[:, :, :1]]), "PNG")]
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    seeds.append(buffer.getvalue())
    return seeds


def zip_seeds(images: list[bytes]) -> list[bytes]:
    def build(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
            for name, data in members:
                archive.writestr(name, data)
        return buffer.getvalue()

    manifest = (b"file,label,split,sha256\ngood/a.png,good,train,\nbad/b.png,bad,held_out,\n")
    return [
        build([("good/a.png", images[0]), ("bad/b.jpg", images[2])]),
        build([("good/a.png", images[0]), ("bad/b.png", images[1])], zipfile.ZIP_STORED),
        build([("manifest.csv", manifest), ("good/a.png", images[0]), ("bad/b.png", images[1])]),
        build([("cat/train/good/000.png", images[0]), ("cat/test/crack/000.png", images[1]),
               ("cat/ground_truth/crack/000_mask.png", images[1])]),
    ]


# --- strategies ------------------------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["flip", "byte", "truncate", "insert", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


member_names = st.one_of(
    st.sampled_from(["good/x.png", "bad/y.png", "x.png", "../evil.png", "/abs.png", "C:/w.png", "good\\..\\e.png",
                     ".hidden/z.png", "good/.z.png", "__MACOSX/good/._x.png", "manifest.csv", "a/b/c/d.png",
                     "cat/train/good/0.png", "cat/test/bad/0.png", "cat/ground_truth/bad/0_mask.png", "good/"]),
    st.text(min_size=1, max_size=30))


@st.composite
def built_zip(draw: st.DrawFn, images: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(buffer, "w", compression=compression) as z:
        for _ in range(draw(st.integers(0, 5))):
            name = draw(member_names)
            content = draw(st.one_of(st.sampled_from(images), mutated(images), st.binary(max_size=256),
                                     st.text(max_size=200).map(str.encode)))
            try:
                z.writestr(name, content)
            except (ValueError, UnicodeEncodeError, IndexError):  # names zipfile cannot write
                continue
    return buffer.getvalue()


# --- the properties ----------------------------------------------------------------------------------
def fuzz_images(examples: int, tally: dict) -> None:
    from core.images import ImageRejectedError, decode_image

    seeds = image_seeds()

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=2048), mutated(seeds), mutated(seeds)))
    def check(data: bytes) -> None:
        tally["inputs"] += 1
        started = time.monotonic()
        signal.alarm(HANG_SECONDS)
        try:
            image = decode_image(data)
        except ImageRejectedError:
            tally["rejected"] += 1
        else:
            assert image.rgb.dtype == np.uint8 and image.rgb.ndim == 3 and image.rgb.shape[2] == 3
            tally["accepted"] += 1
        finally:
            signal.alarm(0)
            tally["slowest_seconds"] = max(tally["slowest_seconds"], round(time.monotonic() - started, 3))

    check()


def fuzz_zips(examples: int, tally: dict) -> None:
    from core.config import Settings
    from core.errors import InvalidInputError
    from core.samples import import_path
    from core.store_check import check_store
    from core.studio import open_studio
    from core.tools import create_tool

    images = image_seeds()
    seeds = zip_seeds(images)
    folder = Path(tempfile.mkdtemp(prefix="fuzz-zip-"))
    studio = open_studio(Settings(folder / "data", f"sqlite:///{folder / 'data' / 'studio.db'}"))
    create_tool(studio, "fuzz", "good,bad", actor=SYSTEM)
    path = folder / "upload.zip"

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=1024), mutated(seeds), mutated(seeds), built_zip(images)))
    def check(data: bytes) -> None:
        tally["inputs"] += 1
        path.write_bytes(data)
        started = time.monotonic()
        signal.alarm(HANG_SECONDS)
        try:
            report = import_path(studio, "fuzz", path, actor=SYSTEM)
        except InvalidInputError:
            tally["rejected"] += 1
        else:
            tally["accepted" if report.imported else "rejected_per_file"] += 1
            tally["samples"] += report.imported
        finally:
            signal.alarm(0)
            tally["slowest_seconds"] = max(tally["slowest_seconds"], round(time.monotonic() - started, 3))

    check()
    found = check_store(studio)
    tally["store_check_problems"] = found.problems
    assert found.problems == 0, found.as_dict()


def peak_rss_mb() -> float:
    """This process's peak resident memory. ``VmHWM`` belongs to this program's own address space;
    ``ru_maxrss`` would also count the parent's memory copied by fork before exec (a pytest process that
    had loaded PyTorch: 1.6 GB that this program never used)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(examples: int) -> int:
    warnings.simplefilter("ignore")  # Pillow and zipfile warn about the damaged inputs: expected here
    signal.signal(signal.SIGALRM, _alarm)
    result: dict = {"examples_asked": examples}
    status = 0
    for name, run in (("image_reader", fuzz_images), ("zip_reader", fuzz_zips)):
        tally = {"inputs": 0, "rejected": 0, "accepted": 0, "slowest_seconds": 0.0}
        if name == "zip_reader":
            tally.update(rejected_per_file=0, samples=0)
        started = time.monotonic()
        try:
            run(examples, tally)
        except BaseException as error:  # noqa: BLE001 - a failing property; the report says which
            notes = getattr(error, "__notes__", [])
            error.__notes__ = []  # hypothesis's falsifying example: shortened below
            tally["failure"] = "".join(traceback.format_exception(error))[-3000:] + \
                "\n".join(note[:1500] for note in notes)
            status = 1
        tally["seconds"] = round(time.monotonic() - started, 1)
        result[name] = tally
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
