"""Chaos: ``kill -9`` at random points of import, training, recording (``predict``), review verdicts and
model promotion, in repeated rounds with a fixed seed, on SQLite and PostgreSQL.

Every operation is a real CLI command (``core.cli.main``, the entry point of ``python -m core``) run in
a process forked from a warm zygote and killed after a seeded random delay. After every round: no row
without its files (``store check`` finds no problem), no sample or model version that was committed
before the round gone, no file a row referenced before the round deleted, no traceback from a command
that was not killed. At the end ``store check --repair`` (grace 0: nothing else runs) and then
``store check`` finds nothing at all. The verdict does not depend on where the kills land.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.audit import SYSTEM
from core.config import Settings
from core.store_check import check_store
from core.studio import open_studio
from core.tools import create_tool
from storage.tables import Inspection, ModelVersion, Review, Tool
from tests.chaos.harness import (
    Tally,
    Zygote,
    check_round,
    record,
    referenced_files,
    sample_ids,
    version_ids,
    write_set,
)

pytestmark = pytest.mark.chaos

SEED = 16
# rounds per operation on each database: 206 in all
PLAN = {"import": 50, "train": 30, "predict": 42, "verdict": 42, "promote": 42}
# kill delays are drawn uniformly from [0, longest] seconds (measured: the operations take about this
# long in a forked child on a busy 2-core machine, so kills land before, inside and after the commit)
LONGEST = {"import": 0.8, "train": 3.0, "predict": 0.6, "verdict": 0.35, "promote": 0.35}
SETS = 8  # overlapping import sets of 24 cells each


def test_kill_rounds(tmp_path: Path, database_url: str) -> None:
    backend = database_url.split(":", 1)[0].split("+", 1)[0]
    data = tmp_path / "data"
    studio = open_studio(Settings(data, database_url))
    create_tool(studio, "parts", "good,bad", actor=SYSTEM)
    create_tool(studio, "model", "good,bad", actor=SYSTEM)
    sets = [write_set(tmp_path / "cells" / f"set{k}", range(12 * k, 12 * k + 24)) for k in range(SETS)]
    train_set = write_set(tmp_path / "cells" / "train", range(1000, 1012))
    probes = sorted(str(p) for p in (tmp_path / "cells" / "set7").glob("*/*.png"))
    rng = random.Random(SEED)
    operations = [op for op, n in PLAN.items() for _ in range(n)]
    rng.shuffle(operations)
    tally = Tally()
    zygote = Zygote(data, database_url)
    started = time.monotonic()
    try:
        setup = zygote.run([{"argv": ["samples", "import", str(train_set), "--tool", "model"]}])
        setup += zygote.run([{"argv": ["train", "--tool", "model", "--profile", "fast"]}])
        setup += zygote.run([{"argv": ["predict", "--tool", "model", *probes[:4]]}])
        assert [r["rc"] for r in setup] == [0, 0, 0], setup
        tally.hangs = 0
        for index, operation in enumerate(operations):
            argv = _argv(operation, rng, studio, sets, probes)
            before = (sample_ids(studio), version_ids(studio), referenced_files(studio))
            delay = rng.uniform(0.0, LONGEST[operation])
            [result] = zygote.run([{"argv": argv, "kill_after": delay}])
            tally.add(operation, result["killed"])
            tally.hangs += result["hung"]
            if result["traceback"]:
                tally.tracebacks.append(f"{argv}: {result['stderr']}")
            check_round(studio, tally, *before)
            if index % 50 == 49:  # a garbage collection now and then, as a user would run it
                check_store(studio, repair=True, grace_seconds=0)
        check_store(studio, repair=True, grace_seconds=0)
        tally.final_findings = check_store(studio).findings
    finally:
        zygote.close()
        studio.engine.dispose()
    counts = {**tally.as_dict(), "database": backend, "seconds": round(time.monotonic() - started, 1)}
    record(f"kill_rounds_{backend}", counts)
    assert tally.tracebacks == [] and tally.hangs == 0
    assert sum(tally.rounds.values()) >= 200
    assert (tally.rows_without_files, tally.lost_committed_samples, tally.referenced_files_deleted) == (0, 0, 0)
    assert tally.final_findings == 0


def _argv(operation: str, rng: random.Random, studio, sets: list[Path], probes: list[str]) -> list[str]:  # noqa: ANN001
    if operation == "import":
        return ["samples", "import", str(rng.choice(sets)), "--tool", "parts"]
    if operation == "train":
        return ["train", "--tool", "model", "--profile", "fast", "--seed", str(rng.randrange(1000)),
                *(["--candidate"] if rng.random() < 0.5 else [])]
    if operation == "predict":
        return ["predict", "--tool", "model", "--station", "chaos", *rng.sample(probes, 3)]
    with studio.transaction() as session:
        tool_id = session.scalar(select(Tool.id).where(Tool.name == "model"))
        if operation == "verdict":
            reviewed = select(Review.inspection_id)
            open_ids = list(session.scalars(select(Inspection.id).where(
                Inspection.tool_id == tool_id, Inspection.id.not_in(reviewed)).order_by(Inspection.id)))
            if open_ids:
                return ["review", "verdict", str(rng.choice(open_ids)), rng.choice(["good", "bad"]),
                        "--reviewer", "chaos", "--device", "chaos"]
            return ["predict", "--tool", "model", "--station", "chaos", *rng.sample(probes, 3)]
        versions = list(session.scalars(select(ModelVersion.id).where(ModelVersion.tool_id == tool_id)
                                         .order_by(ModelVersion.id)))
    return ["models", "promote", str(rng.choice(versions)), "--tool", "model", "--reviewer", "chaos",
            "--device", "chaos"]
