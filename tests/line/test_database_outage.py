"""A station keeps inspecting while its PostgreSQL is down: the PLC still gets verdicts, the inspections
wait in the station's local spool, survive a kill -9 of the station, and are written exactly once and in
order when the database is back; the webhook output receives every one of their events."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.audit import SYSTEM
from core.line.outputs import add_output
from core.line.station import SPOOL_FOLDER
from core.studio import Studio
from storage.line_tables import OutboxEvent
from storage.tables import Inspection
from tests.line.conftest import Receiver, StationProcess, free_port, wait_until
from tests.line.test_fleet_rollout import fleet_studio  # noqa: F401  (the trained tool on this database)
from tests.postgres import TemporaryPostgres

pytestmark = [pytest.mark.line, pytest.mark.slow]


class Server(TemporaryPostgres):
    halted = False

    def halt(self) -> None:
        super().halt()
        self.halted = True

    def resume(self) -> None:
        super().resume()
        self.halted = False


@pytest.fixture
def own_postgres() -> Iterator[Server]:
    """A PostgreSQL server of this test alone: it is stopped and started again."""
    server = Server()
    server.start()
    yield server
    if server.halted:
        server.resume()
    server.stop()


@pytest.fixture
def database_url(own_postgres: Server) -> str:
    return own_postgres.create_database("plant")


def rest(port: int, path: str, post: bool = False) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}" if post else None,
                                     method="POST" if post else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def inspect(port: int) -> dict[str, Any]:
    """One REST trigger, as a PLC's; returns the station's status once the result is ready."""
    before = rest(port, "/status")[1]["inspections"]
    code, body = rest(port, "/trigger", post=True)
    assert code == 200, body
    status = wait_until(lambda: (s := rest(port, "/status")[1])["inspections"] > before
                        and not s["signals"]["Busy"] and s, 30, 0.02, "the result")
    assert status["signals"]["ResultReady"] and not status["signals"]["Error"], status
    return status


def rows(studio: Studio) -> int:
    with studio.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Inspection)) or 0)


def test_inspections_are_spooled_while_postgres_is_down_and_written_exactly_once(
        fleet_studio: Studio, own_postgres: Server, database_url: str, frames: Path,  # noqa: F811
        receiver: Receiver) -> None:
    studio, data = fleet_studio, fleet_studio.settings.data_dir
    add_output(studio, "o1", "mes", "webhook", receiver.url, actor=SYSTEM)
    port = free_port()
    args = ("--station", "o1", "--tool", "cells", "--source", str(frames), "--http-port", str(port))
    station = StationProcess(data, *args, database_url=database_url)
    try:
        for _ in range(3):
            inspect(port)
        assert rows(studio) == 3

        own_postgres.halt()
        verdicts = [inspect(port)["last_result"] for _ in range(5)]  # the PLC still gets its verdicts
        assert all(v["decision"] in ("pass", "fail", "review") for v in verdicts)
        assert [v["seq"] for v in verdicts] == [4, 5, 6, 7, 8]  # provisional, as the outbox will number them
        status = rest(port, "/status")[1]
        assert status["spooled"] == 5 and status["database_error"], status
        station.process.kill()  # kill -9 during the outage
        station.process.wait(10)
        spool = data / SPOOL_FOLDER / "o1"
        spooled_keys = {p.name.split("-", 1)[1].removesuffix(".json") for p in spool.glob("*.json")}
        assert len(spooled_keys) == 5

        own_postgres.resume()
        station = StationProcess(data, *args, database_url=database_url)
        wait_until(lambda: rows(studio) == 8 and rest(port, "/status")[1]["spooled"] == 0, 60, 0.1,
                   "the spool to be written")
        for _ in range(2):
            inspect(port)
        with studio.transaction() as session:
            keys = list(session.scalars(select(Inspection.record_key).order_by(Inspection.id)))
            events = session.execute(select(OutboxEvent.seq, OutboxEvent.inspection_id).order_by(OutboxEvent.seq)).all()
        assert len(keys) == 10 and len(set(keys)) == 10  # every inspection once: none lost, none doubled
        assert spooled_keys <= set(keys) and not list(spool.glob("*.json"))
        assert [seq for seq, _ in events] == list(range(1, 11))
        assert [i for _, i in events] == sorted(i for _, i in events)  # written in the order inspected
        wait_until(lambda: {e["seq"] for e in receiver.events()} >= set(range(1, 11)), 60, 0.1,
                   "the webhook to receive every event")
    finally:
        station.stop()
