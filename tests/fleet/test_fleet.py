"""The fleet: heartbeats and silent stations, and review claims exclusive across tablet processes."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest

from core.audit import SYSTEM
from core.fleet.heartbeat import SILENT_PERIODS, Beat, beat, fleet
from core.studio import Studio
from core.tools import create_tool
from tests.fleet.claims import claim_all, fill_queue

N_CARDS = 400
TABLETS = 4


def test_heartbeat_registers_updates_and_goes_silent(any_studio: Studio) -> None:
    beat(any_studio, Beat("s1", recipe="a", models={"cells": {"classifier": 3}}, fps=9.5, backlog=2,
                          heartbeat_s=0.5))
    beat(any_studio, Beat("s2", state="degraded", reason="tool cells: the new model does not load"))
    rows = {r["name"]: r for r in fleet(any_studio)}
    assert rows["s1"]["models"] == {"cells": {"classifier": 3}} and rows["s1"]["backlog"] == 2
    assert rows["s1"]["software"] and rows["s1"]["host"] and not rows["s1"]["silent"]
    assert rows["s2"]["state"] == "degraded" and "does not load" in rows["s2"]["reason"]
    beat(any_studio, Beat("s1", recipe="b", fps=10.0, heartbeat_s=0.5))  # the same station, updated
    first_seen = fleet(any_studio)[0]["last_seen"]
    assert [r["recipe"] for r in fleet(any_studio)] == ["b", None]
    later = first_seen + timedelta(seconds=SILENT_PERIODS * 0.5 + 0.1)  # s1 beats every 0.5 s, s2 every 1 s
    assert {r["name"]: r["silent"] for r in fleet(any_studio, now=later)} == {"s1": True, "s2": False}
    with pytest.raises(ValueError):
        beat(any_studio, Beat("s3", state="on fire"))


@pytest.mark.slow
def test_four_tablet_processes_never_claim_the_same_card(any_studio: Studio) -> None:
    if any_studio.engine.dialect.name != "postgresql":
        pytest.skip("the plant's tablets share PostgreSQL (SQLite serialises writers: covered by test_review_queue)")
    create_tool(any_studio, "cells", "good,defective", actor=SYSTEM)
    fill_queue(any_studio.settings, "cells", N_CARDS)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(TABLETS) as pool:
        start = manager.Barrier(TABLETS)
        results = pool.starmap(claim_all, [(any_studio.settings, f"tablet{i}", start) for i in range(TABLETS)])
    claimed = [i for result in results for i in result]
    assert len(claimed) - len(set(claimed)) == 0  # no double claims
    assert len(claimed) == N_CARDS  # and every card claimed once
    assert sum(1 for result in results if result) >= 2  # the tablets really competed
