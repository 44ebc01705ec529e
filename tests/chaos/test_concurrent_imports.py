"""Chaos: concurrent imports of overlapping sets, from threads of one process and from processes, into
one tool and into two, one of them cancelled (Ctrl-C / the Cancel button) or killed, on SQLite and
PostgreSQL (issue 16, item 1: before the fix they deleted each other's images).

After every round: no row without its files, nothing committed before lost, no referenced file
deleted, and every import that finished has all its files as samples of its tool (imported by itself or
by the other import of the same bytes).
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.audit import SYSTEM
from core.config import Settings
from core.errors import StudioError
from core.samples import import_path
from core.store_check import check_store
from core.studio import Studio, open_studio
from core.tools import create_tool
from storage.tables import Sample, Tool
from tests.chaos.harness import Tally, Zygote, check_round, record, referenced_files, sample_ids, version_ids, write_set

pytestmark = pytest.mark.chaos

SEED = 1616
ROUNDS = {"threads": 25, "processes": 25}  # per database: 50 concurrent-import rounds
CELLS = 160  # the pool the overlapping sets are drawn from (shared across rounds and tools)


def names_of(studio: Studio, tool: str) -> set[str]:
    with studio.transaction() as session:
        tool_id = session.scalar(select(Tool.id).where(Tool.name == tool))
        return set(session.scalars(select(Sample.original_name).where(Sample.tool_id == tool_id)))


def files_of(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.glob("*/*.png")}


def plan(rng: random.Random, round_index: int, cells: Path) -> list[tuple[str, Path, str | None, float | None]]:
    """Three imports: (tool, folder, interruption, when): two overlapping sets into one tool, a third
    into the same or another tool, interrupted (cancelled or killed) after a random delay."""
    base = rng.randrange(0, CELLS - 40)
    first = write_set(cells / f"r{round_index}a", range(base, base + 24))
    second = write_set(cells / f"r{round_index}b", range(base + 8, base + 32))
    third = write_set(cells / f"r{round_index}c", range(base + 4, base + 40))
    tools = [f"a{round_index}", f"b{round_index}"]
    return [(tools[0], first, None, None), (rng.choice(tools), second, None, None),
            (rng.choice(tools), third, rng.choice(["cancel", "kill"]), rng.uniform(0.0, 0.6))]


def test_concurrent_imports(tmp_path: Path, database_url: str) -> None:
    backend = database_url.split(":", 1)[0].split("+", 1)[0]
    data = tmp_path / "data"
    studio = open_studio(Settings(data, database_url))
    rng = random.Random(SEED)
    tally = Tally()
    incomplete: list[str] = []
    zygote = Zygote(data, database_url)
    started = time.monotonic()
    try:
        for mode, rounds in ROUNDS.items():
            for _ in range(rounds):
                index = tally.concurrent_rounds
                jobs = plan(rng, index, tmp_path / "cells")
                for tool in {job[0] for job in jobs}:
                    create_tool(studio, tool, "good,bad", actor=SYSTEM)
                before = (sample_ids(studio), version_ids(studio), referenced_files(studio))
                finished = _run_threads(studio, jobs) if mode == "threads" else _run_processes(zygote, jobs)
                tally.concurrent_rounds += 1
                check_round(studio, tally, *before)
                for (tool, folder, _, _), done in zip(jobs, finished, strict=True):
                    missing = files_of(folder) - names_of(studio, tool) if done else set()
                    if missing:
                        incomplete.append(f"round {index} ({mode}) {tool}: {sorted(missing)[:3]}")
        check_store(studio, repair=True, grace_seconds=0)
        tally.final_findings = check_store(studio).findings
    finally:
        zygote.close()
        studio.engine.dispose()
    counts = {"database": backend, "concurrent_rounds": tally.concurrent_rounds,
              **{f"{m}_rounds": n for m, n in ROUNDS.items()},
              "rows_without_files": tally.rows_without_files, "lost_committed_samples": tally.lost_committed_samples,
              "referenced_files_deleted": tally.referenced_files_deleted,
              "incomplete_finished_imports": len(incomplete),
              "final_store_check_findings": tally.final_findings, "seconds": round(time.monotonic() - started, 1)}
    record(f"concurrent_imports_{backend}", counts)
    assert (tally.rows_without_files, tally.lost_committed_samples, tally.referenced_files_deleted) == (0, 0, 0)
    assert incomplete == []
    assert tally.final_findings == 0


def _run_threads(studio: Studio, jobs: list[tuple[str, Path, str | None, float | None]]) -> list[bool]:
    """The imports in threads of this process (as two browser sessions of one server); the interrupted
    one is cancelled (its Cancel button) after its delay."""
    start = threading.Barrier(len(jobs))
    outcome: list[bool] = [False] * len(jobs)
    errors: list[BaseException] = []

    def run(position: int, tool: str, folder: Path, interruption: str | None, delay: float | None) -> None:
        cancel = threading.Event()
        if interruption is not None and delay is not None:
            threading.Timer(delay, cancel.set).start()
        start.wait()
        try:
            report = import_path(studio, tool, folder, cancel=cancel, actor=SYSTEM)
            outcome[position] = not report.cancelled
        except StudioError:  # e.g. "the database is locked ... try again": said to the user, nothing lost
            outcome[position] = False
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i, *job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    return outcome


def _run_processes(zygote: Zygote, jobs: list[tuple[str, Path, str | None, float | None]]) -> list[bool]:
    """The imports as concurrent CLI processes (two tablets, a CLI beside the page); the interrupted one
    gets Ctrl-C (SIGINT: the import's cancel) or kill -9."""
    results = zygote.run([{"argv": ["samples", "import", str(folder), "--tool", tool],
                           "kill_after": delay, "signal": "INT" if interruption == "cancel" else "KILL"}
                          for tool, folder, interruption, delay in jobs])
    assert not any(r["traceback"] or r["hung"] for r in results), results
    return [r["rc"] == 0 for r in results]
