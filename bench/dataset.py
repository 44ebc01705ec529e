"""Dataset benchmark (issue 7): import speed with thumbnails, and the browser's data for one page.

1. ``import_1000_s``: 1,000 real ELPV cells (PNG files on disk, one folder per class: defective when
   the defect probability >= 0.5) imported into a fresh studio with ``core.samples.import_path``:
   read, decode, content hash, dedupe, perceptual hash, thumbnail, atomic store, one transaction per
   sample. Median of ``--repeats`` fresh studios. Baseline in the same run: the same files only read
   and decoded (the least any import must do); the ratio is the cost of everything else.
2. ``page_ms``: the tool is filled to 10,000 real samples (the 2,624 ELPV cells in their 4
   orientations, 10,496 distinct images, imported with the same code) and ``core.dataset.browse``
   fetches one page of 60 (count + rows + thumbnail paths) and the 60 thumbnail files are read (what
   the page hands to the browser). Median over random pages, without and with a label filter.
   Baseline: the same page made from the full-size images (decode + resize 60 originals), which is
   what cached thumbnails avoid.

Run under the shared CPU lock: ``flock /tmp/studio-cpu.lock .venv/bin/python bench/dataset.py``.
The last line printed is one JSON object with ``import_1000_s`` and ``page_ms``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.audit import SYSTEM  # noqa: E402
from core.config import Settings  # noqa: E402
from core.dataset import PAGE_SIZE, DatasetFilter, browse  # noqa: E402
from core.images import decode_image  # noqa: E402
from core.samples import import_path  # noqa: E402
from core.studio import Studio, open_studio  # noqa: E402
from core.thumbnails import thumbnail_jpeg  # noqa: E402
from core.tools import create_tool  # noqa: E402

TOOL = "cells"
IMPORT_TARGET_S = 30.0
PAGE_TARGET_MS = 300.0


def write_cells(folder: Path, images: np.ndarray, proba: np.ndarray, indices: list[int], turn: int = 0) -> None:
    """Cells as PNG files in ``folder/good`` and ``folder/defective``; ``turn`` quarter turns each
    (mirrored from 4 turns on)."""
    for label in ("good", "defective"):
        (folder / label).mkdir(parents=True, exist_ok=True)
    for index in indices:
        label = "defective" if proba[index] >= 0.5 else "good"
        pixels = np.rot90(images[index], turn % 4)
        Image.fromarray((pixels[:, ::-1] if turn >= 4 else pixels).copy()).save(
            folder / label / f"cell_{index:04d}_r{turn}.png")


def fresh_studio(root: Path) -> Studio:
    data_dir = root / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    return studio


def time_import(folder: Path, work: Path) -> float:
    studio = fresh_studio(work)
    start = time.perf_counter()
    report = import_path(studio, TOOL, folder, actor=SYSTEM)
    seconds = time.perf_counter() - start
    assert report.imported == sum(1 for _ in folder.rglob("*.png")) and not report.rejected, report.as_dict()
    studio.engine.dispose()
    return seconds


def time_decode_only(folder: Path) -> float:
    start = time.perf_counter()
    for path in sorted(folder.rglob("*.png")):
        decode_image(path.read_bytes())
    return time.perf_counter() - start


def page_times(studio: Studio, filters: DatasetFilter, pages: list[int]) -> list[float]:
    times = []
    for page in pages:
        start = time.perf_counter()
        result = browse(studio, TOOL, filters, page, PAGE_SIZE)
        payload = [item.thumbnail.read_bytes() for item in result.items]
        times.append((time.perf_counter() - start) * 1000)
        assert len(payload) == len(result.items) > 0
    return times


def full_size_page_ms(studio: Studio, pages: list[int]) -> list[float]:
    """Baseline: the same pages made from the stored full-size images instead of cached thumbnails."""
    from sqlalchemy import select

    from storage import repository as repo
    from storage.tables import Tool

    times = []
    with studio.transaction() as session:
        tool_id = session.scalar(select(Tool.id).where(Tool.name == TOOL))
    for page in pages:
        start = time.perf_counter()
        with studio.transaction() as session:
            clauses = repo.sample_filter(tool_id)
            repo.count_samples(session, clauses)
            keys = [s.image_key for s in repo.page_of_samples(session, clauses, (page - 1) * PAGE_SIZE, PAGE_SIZE)]
        payload = [thumbnail_jpeg(decode_image(studio.images.read(key)).rgb) for key in keys]
        times.append((time.perf_counter() - start) * 1000)
        assert len(payload) == len(keys) > 0
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh imports of the 1,000 cells")
    parser.add_argument("--samples", type=int, default=10_000, help="samples in the tool for the page test")
    parser.add_argument("--pages", type=int, default=21, help="page fetches per measurement")
    args = parser.parse_args()

    from elpv_dataset.utils import load_dataset

    images, proba, _types = load_dataset()
    rng = random.Random(0)
    order = list(range(len(images)))
    rng.shuffle(order)
    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as tmp:
        root = Path(tmp)
        thousand = root / "cells_1000"
        write_cells(thousand, images, proba, order[:1000])
        decode_s = time_decode_only(thousand)
        runs = [time_import(thousand, root / f"import_{run}") for run in range(args.repeats)]
        import_s = statistics.median(runs)
        print(f"import of 1,000 ELPV cells with thumbnails: median {import_s:.2f} s over {args.repeats} runs "
              f"({', '.join(f'{r:.2f}' for r in runs)}); {import_s:.2f} / 1000 = {import_s:.1f} ms per image; "
              f"read+decode only {decode_s:.2f} s (x{import_s / decode_s:.1f})", flush=True)

        # Fill one tool to args.samples real samples: every cell in 4 orientations, imported for real.
        studio = fresh_studio(root / "browse")
        fill_start = time.perf_counter()
        remaining, turn = args.samples, 0
        while remaining > 0 and turn < 8:
            batch = root / f"fill_{turn}"
            write_cells(batch, images, proba, order[: min(remaining, len(order))], turn)
            remaining -= import_path(studio, TOOL, batch, actor=SYSTEM).imported
            turn += 1
        fill_s = time.perf_counter() - fill_start
        total = browse(studio, TOOL).total
        print(f"filled the tool to {total:,} samples in {fill_s:.0f} s", flush=True)

        last = -(-total // PAGE_SIZE)
        pages = [1, last] + [rng.randint(1, last) for _ in range(args.pages - 2)]
        page_times(studio, DatasetFilter(), [1, 2])  # warm the connection pool and the OS file cache
        plain = page_times(studio, DatasetFilter(), pages)
        defective_pages = -(-browse(studio, TOOL, DatasetFilter(labels=["defective"])).total // PAGE_SIZE)
        filtered = page_times(studio, DatasetFilter(labels=["defective"], splits=["train"]),
                              [rng.randint(1, defective_pages) for _ in pages])
        baseline = full_size_page_ms(studio, pages[:5])
        page_ms = statistics.median(plain)
        print(f"one page of {PAGE_SIZE} of {total:,} samples: median {page_ms:.1f} ms, max {max(plain):.1f} ms "
              f"({len(pages)} random pages incl. first and last); label+split filter: median "
              f"{statistics.median(filtered):.1f} ms; from full-size images instead of thumbnails: median "
              f"{statistics.median(baseline):.1f} ms (x{statistics.median(baseline) / page_ms:.1f})", flush=True)
        studio.engine.dispose()

    result = {
        "import_1000_s": round(import_s, 2), "import_runs_s": [round(r, 2) for r in runs],
        "import_ms_per_image": round(import_s, 2), "decode_only_1000_s": round(decode_s, 2),
        "import_target_s": IMPORT_TARGET_S, "import_ok": import_s <= IMPORT_TARGET_S,
        "samples_in_tool": total, "fill_s": round(fill_s, 1),
        "page_ms": round(page_ms, 1), "page_max_ms": round(max(plain), 1),
        "page_filtered_ms": round(statistics.median(filtered), 1),
        "page_from_full_images_ms": round(statistics.median(baseline), 1),
        "page_target_ms": PAGE_TARGET_MS, "page_ok": page_ms <= PAGE_TARGET_MS,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}",
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
