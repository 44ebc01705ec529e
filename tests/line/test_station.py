"""The station service as a subprocess, driven like a line: a pymodbus client plays the PLC, an
asyncua client a second PLC, a real Mosquitto broker and a real webhook receiver are the plant."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest
from asyncua import Client, ua
from pymodbus.client import ModbusTcpClient
from sqlalchemy import func, select

from core.audit import SYSTEM, audit_log
from core.line.opcua import NAMESPACE
from core.line.outputs import add_output, list_outputs
from core.line.recipes import create_recipe
from core.line.station import station_rows
from core.line.webhook import verify
from core.studio import Studio
from storage.line_tables import OutboxDelivery, OutboxEvent
from storage.tables import Inspection
from tests.line.conftest import (
    ROOT,
    Mosquitto,
    Receiver,
    StationProcess,
    free_port,
    wait_until,
)
from tests.line.test_outbox import Subscriber

pytestmark = [pytest.mark.line, pytest.mark.slow]
READY, BUSY, RESULT_READY, OK, NG, REVIEW, ERROR = range(7)
SEQ, CLASS, SCORE, RECIPE, CODE = range(5)


class Plc:
    """What a PLC program does over Modbus TCP."""

    def __init__(self, port: int) -> None:
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
        assert self.client.connect()

    def bits(self) -> list[bool]:
        return list(self.client.read_discrete_inputs(0, count=7).bits[:7])

    def regs(self) -> list[int]:
        return list(self.client.read_input_registers(0, count=5).registers)

    def inspect(self) -> tuple[list[bool], list[int]]:
        """One full handshake: Trigger -> ResultReady (or Error) -> read -> Ack -> clear."""
        wait_until(lambda: not self.bits()[BUSY], what="not busy")
        self.client.write_coil(0, True)
        bits = wait_until(lambda: (b := self.bits())[RESULT_READY] and b, 30, 0.002, "ResultReady")
        regs = self.regs()
        self.client.write_coils(0, [False, True])
        wait_until(lambda: not self.bits()[RESULT_READY], what="ResultReady to clear after Ack")
        self.client.write_coil(1, False)
        return bits, regs

    def close(self) -> None:
        self.client.close()


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "STUDIO_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


async def _opcua_inspect(port: int, station: str) -> tuple[bool, int]:
    async with Client(f"opc.tcp://127.0.0.1:{port}/studio/", timeout=10) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        obj = await client.nodes.objects.get_child([f"{idx}:{station}"])

        async def node(name: str) -> Any:
            return await obj.get_child([f"{idx}:{name}"])

        trigger, ready, seq = await node("Trigger"), await node("ResultReady"), await node("ResultSeq")
        await trigger.write_value(True)
        deadline = time.monotonic() + 30
        while not await ready.read_value():
            assert time.monotonic() < deadline, "OPC UA ResultReady never came"
            await asyncio.sleep(0.01)
        number = await seq.read_value()
        await (await node("Ack")).write_value(True)
        while await ready.read_value():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await (await node("Ack")).write_value(False)
        await trigger.write_value(False)
        await (await node("RequestedRecipe")).write_value(ua.Variant(1, ua.VariantType.UInt16))
        return bool(await (await node("Error")).read_value()), int(number)


def test_station_end_to_end(line_studio: Studio, frames: Path, mosquitto: Mosquitto, receiver: Receiver) -> None:
    studio, data = line_studio, line_studio.settings.data_dir
    create_recipe(studio, "s1", "cell-a", 1, ["cells"], actor=SYSTEM)
    create_recipe(studio, "s1", "cell-b", 2, [{"tool": "cells", "threshold": 0.99, "policy": "classifier only"}],
        actor=SYSTEM)
    add_output(studio, "s1", "plant", "mqtt", mosquitto.url, actor=SYSTEM)
    add_output(studio, "s1", "mes", "webhook", receiver.url, secret="hook-key-123", actor=SYSTEM)
    plant = Subscriber(mosquitto)
    modbus, opcua = free_port(), free_port()
    args = (
        "--station",
        "s1",
        "--recipe",
        "cell-a",
        "--source",
        str(frames),
        "--modbus-port",
        str(modbus),
        "--opcua-port",
        str(opcua),
        "--bind",
        "127.0.0.1",
    )
    station = StationProcess(data, *args)
    plc = Plc(modbus)
    try:
        wait_until(lambda: plc.bits()[READY], 30, what="Ready")
        assert plc.regs()[RECIPE] == 1
        # three handshakes; each result matches its published event
        for _ in range(3):
            bits, regs = plc.inspect()
            assert not bits[ERROR] and sum(bits[OK : REVIEW + 1]) == 1
            event = wait_until(
                lambda seq=regs[SEQ]: next((e for e in plant.events() if e["seq"] == seq), None), what="the event"
            )
            assert {"pass": OK, "fail": NG, "review": REVIEW}[event["decision"]] == bits.index(True, OK)
            assert regs[SCORE] == round(event["score"] * 1000) and event["recipe"] == "cell-a"
        # changeover by the PLC's recipe register
        plc.client.write_register(0, 2)
        wait_until(lambda: plc.regs()[RECIPE] == 2, 10, 0.005, "recipe 2 active")
        _, regs = plc.inspect()
        assert (
            wait_until(lambda: next((e for e in plant.events() if e["seq"] == regs[SEQ]), None))["recipe"] == "cell-b"
        )
        assert any(r.action == "recipe_activate" and r.details.get("via") == "modbus" for r in audit_log(studio))
        # an unknown recipe number: Error + code, the active recipe stays
        plc.client.write_register(0, 9)
        wait_until(lambda: plc.bits()[ERROR], 10, what="Error for recipe 9")
        assert plc.regs()[CODE] == 2 and plc.regs()[RECIPE] == 2
        plc.client.write_coil(1, True)
        plc.client.write_coil(1, False)
        # a trigger storm: edges while busy give Error code 1, never a stuck Busy
        for _ in range(15):
            plc.client.write_coil(0, True)
            plc.client.write_coil(0, False)
        wait_until(lambda: not plc.bits()[BUSY], 30, what="Busy to clear after the storm")
        plc.client.write_coil(1, True)
        plc.client.write_coil(1, False)
        # MQTT: a malformed command is an error for the PLC; a good one triggers
        mqtt_publish.single("studio/s1/cmd", b"{not json", qos=1, hostname="127.0.0.1", port=mosquitto.port)
        wait_until(lambda: plc.bits()[ERROR] and plc.regs()[CODE] == 6, 10, what="Error code 6")
        plc.client.write_coil(1, True)
        plc.client.write_coil(1, False)
        before = plc.regs()[SEQ]
        mqtt_publish.single(
            "studio/s1/cmd", json.dumps({"cmd": "trigger"}), qos=1, hostname="127.0.0.1", port=mosquitto.port
        )
        wait_until(lambda: plc.regs()[SEQ] != before, 30, what="an MQTT-triggered inspection")
        # CLI trigger (through the station's loopback REST server)
        wait_until(lambda: not plc.bits()[BUSY])
        result = _cli(data, "station", "trigger", "--station", "s1")
        assert result.returncode == 0 and json.loads(result.stdout)["accepted"], result.stderr
        # OPC UA: the same handshake from a second PLC; it also switches back to recipe 1
        error, number = asyncio.run(_opcua_inspect(opcua, "s1"))
        assert not error and number > before
        wait_until(lambda: plc.regs()[RECIPE] == 1, 10, what="recipe 1 from OPC UA")
        # the page's data: status with connections
        status = wait_until(
            lambda: (rows := station_rows(studio)) and rows[0]["status"].get("outputs", {}).get("plant")
        )
        assert status["state"] == "connected"
        # broker down: the PLC keeps working; events wait in the outbox, through a station restart
        mosquitto.kill()
        for _ in range(3):
            bits, regs = plc.inspect()
            assert not bits[ERROR]
        plc.close()
        assert station.stop() == 0
        mosquitto.start()
        station = StationProcess(data, *args)
        with studio.transaction() as session:
            total = session.scalar(select(func.count()).select_from(OutboxEvent))
            wanted = sorted(session.scalars(select(OutboxEvent.event_id)))
        wait_until(
            lambda: sorted({e["event_id"] for e in plant.events()}) == wanted, 60, 0.1, "every event at the broker"
        )
        wait_until(
            lambda: sorted({e["event_id"] for e in receiver.events()}) == wanted, 60, 0.1, "every event at the webhook"
        )
        for headers, body in receiver.posts:
            assert verify("hook-key-123", body, headers["x-studio-signature"])
        with studio.transaction() as session:
            assert session.scalar(select(func.count()).select_from(Inspection)) == total
            assert sorted(session.scalars(select(OutboxEvent.seq))) == list(range(1, total + 1))
            wait_until(lambda: _undelivered(studio) == 0, 30, 0.1, "the outbox to drain")
        assert [o.secret for o in list_outputs(studio, "s1")] == ["ho****", None]  # mes, plant
        assert "hook-key-123" not in station.logs()
    finally:
        plc.close()
        station.stop()
        plant.close()


def _undelivered(studio: Studio) -> int:
    with studio.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(OutboxDelivery).where(OutboxDelivery.delivered_at.is_(None))
            )
        )


def test_bad_camera_and_wrong_broker_credentials(line_studio: Studio, tmp_path: Path) -> None:
    """A camera URL that does not answer and a broker that refuses the password: clear errors in the
    status and the log, the Error bit for the PLC, and the service keeps running."""
    studio, data = line_studio, line_studio.settings.data_dir
    broker = Mosquitto(tmp_path / "secure", users={"camera": "right-password"})
    broker.start()
    try:
        add_output(studio, "s2", "plant", "mqtt", broker.url, username="camera", secret="wrong-password", actor=SYSTEM)
        modbus = free_port()
        dead = f"rtsp://127.0.0.1:{free_port()}/stream"
        station = StationProcess(
            data,
            "--station",
            "s2",
            "--tool",
            "cells",
            "--source",
            dead,
            "--modbus-port",
            str(modbus),
            "--bind",
            "127.0.0.1",
        )
        plc = Plc(modbus)
        try:
            assert not plc.bits()[READY]
            plc.client.write_coil(0, True)
            bits = wait_until(lambda: (b := plc.bits())[RESULT_READY] and b, 30, what="a result (an error)")
            assert bits[ERROR] and not bits[BUSY] and plc.regs()[CODE] == 3
            status = wait_until(
                lambda: (s := station_rows(studio)[-1]["status"]).get("outputs", {}).get("plant", {}).get("error") and s
            )
            assert "refused" in status["outputs"]["plant"]["error"] and status["source"]["error"]
            assert "wrong-password" not in json.dumps(status) and "wrong-password" not in station.logs()
            assert "cannot open stream" in station.logs() and "broker refused" in station.logs()
            assert station.process.poll() is None
        finally:
            plc.close()
            assert station.stop() == 0
    finally:
        broker.kill()
