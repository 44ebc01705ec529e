"""Helpers of the chaos suite: the warm forking process, tiny images, the invariants and the counts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select

from core.store_check import check_store
from core.studio import Studio
from storage.tables import ModelVersion, Sample
from tests.cli_accounts import add_accounts

ROOT = Path(__file__).resolve().parents[2]


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def cell(index: int, defective: bool, side: int = 32) -> np.ndarray:
    """A tiny synthetic part: a gray plate with a seeded texture; defective ones get a dark scratch."""
    rng = np.random.default_rng(index)
    plate = np.clip(150 + rng.normal(0, 12, (side, side)), 0, 255)
    if defective:
        row = int(rng.integers(4, side - 4))
        plate[row:row + 2, 4:side - 4] = 30
    return np.repeat(plate.astype(np.uint8)[:, :, None], 3, axis=2)


def write_set(folder: Path, indices: range | list[int], defective_every: int = 2) -> Path:
    """Class folders ``good/`` and ``bad/`` with the cells ``indices`` (every ``defective_every``-th is bad)."""
    for index in indices:
        bad = index % defective_every == 0
        target = folder / ("bad" if bad else "good")
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"c{index:05d}.png"
        if not path.exists():
            path.write_bytes(png(cell(index, bad)))
    return folder


class Zygote:
    """``tests/chaos/zygote.py`` for one data folder and database."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
               "CHAOS_LOGS": str(data_dir.parent / "chaos-logs"), "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
               # pyarrow (imported by pandas) starts its jemalloc's background thread, and OpenMP / BLAS
               # start pools: a thread in the zygote at fork time can leave a lock held in the child (a
               # hung child was seen); with these the zygote has one thread, which it checks
               "JE_ARROW_MALLOC_CONF": "background_thread:false", "OPENBLAS_NUM_THREADS": "1"}
        add_accounts(env)  # the CLI acts as a real account
        self.process = subprocess.Popen([sys.executable, "-m", "tests.chaos.zygote"], cwd=ROOT, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.process.stdout.readline()  # type: ignore[union-attr]
        if not ready.startswith('{"ready"'):
            raise RuntimeError(f"the chaos zygote did not start: {ready!r}")

    def run(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.process.stdin.write(json.dumps({"jobs": jobs}) + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        answer = self.process.stdout.readline()  # type: ignore[union-attr]
        if not answer:
            raise RuntimeError("the chaos zygote died")
        return json.loads(answer)["results"]

    def close(self) -> None:
        try:
            self.process.stdin.write(json.dumps({"quit": True}) + "\n")  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class Tally:
    """What a chaos run counted; every loss counter must stay 0."""

    rounds: dict[str, int] = field(default_factory=dict)  # operation -> kill rounds
    killed: dict[str, int] = field(default_factory=dict)  # operation -> rounds whose process really died by the kill
    concurrent_rounds: int = 0
    rows_without_files: int = 0
    lost_committed_samples: int = 0
    referenced_files_deleted: int = 0
    tracebacks: list[str] = field(default_factory=list)
    hangs: int = 0
    final_findings: int = -1

    def add(self, operation: str, killed: bool) -> None:
        self.rounds[operation] = self.rounds.get(operation, 0) + 1
        self.killed[operation] = self.killed.get(operation, 0) + int(killed)

    def as_dict(self) -> dict[str, Any]:
        return {"kill_rounds": dict(sorted(self.rounds.items())), "kill_rounds_total": sum(self.rounds.values()),
                "killed_mid_operation": dict(sorted(self.killed.items())),
                "concurrent_rounds": self.concurrent_rounds, "rows_without_files": self.rows_without_files,
                "lost_committed_samples": self.lost_committed_samples,
                "referenced_files_deleted": self.referenced_files_deleted,
                "tracebacks": len(self.tracebacks), "hangs": self.hangs,
                "final_store_check_findings": self.final_findings}


def sample_ids(studio: Studio) -> set[int]:
    with studio.transaction() as session:
        return set(session.scalars(select(Sample.id)))


def version_ids(studio: Studio) -> set[int]:
    with studio.transaction() as session:
        return set(session.scalars(select(ModelVersion.id)))


def referenced_files(studio: Studio) -> set[str]:
    from storage import store_refs

    with studio.transaction() as session:
        return store_refs.referenced_images(session)


def check_round(studio: Studio, tally: Tally, before_samples: set[int], before_versions: set[int],
                before_files: set[str]) -> None:
    """After a round: no row without its files, no committed sample or version gone, no file that a row
    referenced before the round deleted."""
    report = check_store(studio)
    tally.rows_without_files += report.problems
    tally.lost_committed_samples += len(before_samples - sample_ids(studio))
    tally.lost_committed_samples += len(before_versions - version_ids(studio))
    tally.referenced_files_deleted += sum(1 for key in before_files if not studio.images.exists(key))


COUNTS: dict[str, dict[str, Any]] = {}  # printed at the end of the run by tests/chaos/conftest.py


def record(name: str, counts: dict[str, Any]) -> None:
    """Keep the counts for the run's summary; with ``CHAOS_RESULTS=path`` also write them (JSON) there."""
    COUNTS[name] = counts
    target = os.environ.get("CHAOS_RESULTS")
    if target:
        path = Path(target)
        try:
            existing = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            existing = {}
        existing[name] = counts
        path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
