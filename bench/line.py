"""Line benchmark: the station service as a subprocess, a pymodbus client as the PLC, a real
Mosquitto broker, a plant-side MQTT subscriber. No protocol is mocked.

    bench/quiet.sh .venv/bin/python bench/line.py [--handshakes 500] [--events 10000] [--throughput 5000]
    .venv/bin/python bench/line.py --quick          # 50 handshakes, 1,000 events: a smoke run

1. ``trigger_to_result_ms``: Modbus handshakes (Trigger -> ResultReady seen by the PLC's polling
   client) on a folder source of the 40 committed ELPV cells (300 x 300), a tool trained with the
   ``fast`` profile; ``model_ms`` is each inspection's own model time (``inspection.latency_ms``).
2. ``changeover_ms``: recipe switches by the PLC's holding register (models cached): write -> the
   active-recipe input register shows the new number.
3. ``events_per_s``: events recorded as fast as possible (inspection row + outbox rows, no model)
   while the running station's outbox worker delivers them to the broker at QoS 1 (PUBACK per event)
   and marks them delivered: count / (last marked - first recorded). ``drain_per_s``: a backlog
   recorded while the broker is down, from the first event at the plant to the last marked delivered.
4. ``lost`` / ``duplicates_unflagged``: events recorded (inspection row + outbox rows in one
   transaction, by this process, without a model) while the broker is killed (kill -9) and
   restarted twice and the station service killed (kill -9) and restarted once; the subscriber
   (persistent session, QoS 1) counts unique event ids; a duplicate is *flagged* when its event id
   was seen before (receivers drop it) and *unflagged* when the same (station, seq) came with another
   event id (receivers could not drop it).

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from pymodbus.client import ModbusTcpClient  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from core.audit import SYSTEM  # noqa: E402
from core.config import Settings  # noqa: E402
from core.inspect.recorder import RecordedInspection  # noqa: E402
from core.line.outbox import Outbox  # noqa: E402
from core.line.outputs import add_output  # noqa: E402
from core.line.recipes import create_recipe  # noqa: E402
from core.studio import Studio, open_studio  # noqa: E402
from storage import repository as repo  # noqa: E402
from storage.line_tables import OutboxDelivery  # noqa: E402
from storage.tables import Inspection  # noqa: E402

ELPV = ROOT / "tests" / "data" / "elpv"
POLL_S = 0.001  # the PLC's scan cycle


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Any, timeout: float, every: float = 0.01, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))], 2)


class Broker:
    """Mosquitto with persistence saved on every change (a kill -9 keeps queued messages)."""

    def __init__(self, folder: Path, durable: bool = True) -> None:
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"user {getpass.getuser()}",
            "allow_anonymous true",
            "max_queued_messages 0",
        ]
        if durable:  # saved on every change: a kill -9 keeps what the broker acknowledged
            lines += [
                "persistence true",
                f"persistence_location {folder}/",
                "autosave_interval 1",
                "autosave_on_changes true",
            ]
        config = "\n".join(lines) + "\n"
        (folder / "mosquitto.conf").write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.folder / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", self.port)) == 0, 15, 0.05, "mosquitto")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


class Plant:
    """The plant's subscriber: persistent session, QoS 1; counts events by id and by (station, seq)."""

    def __init__(self, port: int) -> None:
        self.ids: dict[str, int] = {}
        self.first_at: dict[str, float] = {}  # event id -> when it first arrived
        self.by_seq: dict[tuple[str, int], set[str]] = {}
        self.received = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-plant", clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("studio/+/+/inspection", qos=1)
        self.client.on_message = self.on_message
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        event = json.loads(message.payload)
        with self.lock:
            self.received += 1
            self.first_at.setdefault(event["event_id"], time.perf_counter())
            self.ids[event["event_id"]] = self.ids.get(event["event_id"], 0) + 1
            self.by_seq.setdefault((event["station"], event["seq"]), set()).add(event["event_id"])

    def unique(self) -> int:
        with self.lock:
            return len(self.ids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class StationProcess:
    def __init__(self, data: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(STUDIO_DATA_DIR=str(data), OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "core", "station", "run", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=open(data / "station.log", "ab"),
            text=True,
        )
        assert self.process.stdout is not None
        if not self.process.stdout.readline():
            tail = (data / "station.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"station did not start:\n{tail}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)


def make_studio(folder: Path) -> Studio:
    from core.samples import import_path
    from core.tools import create_tool
    from core.training import train

    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    create_tool(studio, "cells", "good,defective", actor=SYSTEM)
    import_path(studio, "cells", ELPV, actor=SYSTEM)
    started = time.perf_counter()
    train(studio, "cells", profile="fast", actor=SYSTEM)
    log(f"trained the fast profile in {time.perf_counter() - started:.1f} s")
    create_recipe(studio, "line1", "cell-a", 1, ["cells"], actor=SYSTEM)
    create_recipe(studio, "line1", "cell-b", 2, [{"tool": "cells", "threshold": 0.6, "policy": "classifier only"}],
        actor=SYSTEM)
    return studio


def undelivered(studio: Studio) -> int:
    with studio.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(OutboxDelivery).where(OutboxDelivery.delivered_at.is_(None))
            )
        )


def handshakes(plc: ModbusTcpClient, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        plc.write_coil(0, True)
        while True:  # a PLC reads its inputs once per scan cycle (here 1 ms)
            bits = plc.read_discrete_inputs(0, count=7).bits
            if bits[2]:
                break
            time.sleep(POLL_S)
        times.append((time.perf_counter() - started) * 1000)
        if bits[6]:
            raise RuntimeError(f"error code {plc.read_input_registers(4, count=1).registers[0]}")
        plc.write_coils(0, [False, True])
        while plc.read_discrete_inputs(0, count=7).bits[2]:
            time.sleep(POLL_S)
        plc.write_coil(1, False)
    return times


def opcua_handshakes(port: int, n: int) -> list[float]:
    """The same handshake over OPC UA (asyncua client reading ResultReady every 1 ms)."""
    import asyncio

    from asyncua import Client

    from core.line.opcua import NAMESPACE

    async def run() -> list[float]:
        async with Client(f"opc.tcp://127.0.0.1:{port}/studio/", timeout=10) as client:
            idx = await client.get_namespace_index(NAMESPACE)
            obj = await client.nodes.objects.get_child([f"{idx}:line1"])
            node = {name: await obj.get_child([f"{idx}:{name}"]) for name in ("Trigger", "Ack", "ResultReady", "Error")}
            times = []
            for _ in range(n):
                started = time.perf_counter()
                await node["Trigger"].write_value(True)
                while not await node["ResultReady"].read_value():
                    await asyncio.sleep(POLL_S)
                times.append((time.perf_counter() - started) * 1000)
                if await node["Error"].read_value():
                    raise RuntimeError("OPC UA handshake ended in Error")
                await node["Trigger"].write_value(False)
                await node["Ack"].write_value(True)
                while await node["ResultReady"].read_value():
                    await asyncio.sleep(POLL_S)
                await node["Ack"].write_value(False)
            return times

    return asyncio.run(run())


def changeovers(plc: ModbusTcpClient, n: int) -> list[float]:
    times = []
    for i in range(n):
        number = 2 if i % 2 == 0 else 1
        started = time.perf_counter()
        plc.write_register(0, number)
        while plc.read_input_registers(3, count=1).registers[0] != number:
            time.sleep(POLL_S)
        times.append((time.perf_counter() - started) * 1000)
    return times


def produce(studio: Studio, station: str, count: int, rate: float, stop: threading.Event | None = None) -> int:
    """Record ``count`` inspections with their outbox rows (same transaction), ``rate`` per second."""
    outbox = Outbox()
    batch, made, started = 20, 0, time.perf_counter()
    while made < count and not (stop and stop.is_set()):
        with studio.transaction() as session:
            for _ in range(min(batch, count - made)):
                row = repo.add_inspection(
                    session, tool_id=1, station=station, decision="pass", label="good", score=0.1, latency_ms=0.0
                )
                outbox.in_transaction(
                    session,
                    RecordedInspection(
                        row.id, "cells", 1, station, "cell-a", row.created_at, "pass", "good", 0.1, {}, {}, False, None
                    ),
                )
                made += 1
        if rate:
            ahead = made / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handshakes", type=int, default=500)
    parser.add_argument("--changeovers", type=int, default=40)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=400.0, help="events per second recorded during the chaos run")
    parser.add_argument("--throughput", type=int, default=5000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--broker",
        choices=["durable", "plain"],
        default="durable",
        help="durable: Mosquitto saves on every change (needed for lost == 0 across kill -9)",
    )
    parser.add_argument("--opcua", type=int, default=200, help="handshakes over OPC UA")
    parser.add_argument("--parts", default="handshake,opcua,throughput,chaos", help="which parts to run")
    args = parser.parse_args()
    if args.quick:
        args.handshakes, args.changeovers, args.events, args.throughput, args.opcua = 50, 10, 1000, 1000, 30
    work = Path(tempfile.mkdtemp(prefix="line-bench-"))
    result: dict[str, Any] = {
        "bench": "line",
        "broker": args.broker,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "handshakes": args.handshakes,
        "events": args.events,
    }
    broker = Broker(work / "broker", durable=args.broker == "durable")
    broker.start()
    plant = Plant(broker.port)
    station: StationProcess | None = None
    try:
        data = work / "data"
        studio = make_studio(data)
        add_output(studio, "line1", "plant", "mqtt", f"mqtt://127.0.0.1:{broker.port}/studio", actor=SYSTEM)
        frames = work / "frames"
        frames.mkdir()
        for path in sorted(ELPV.rglob("*.png")):
            shutil.copy(path, frames / f"{path.parent.name}_{path.name}")
        modbus = free_port()
        opcua = free_port()
        station_args = (
            "--station",
            "line1",
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
            "--fps",
            "30",
        )
        station = StationProcess(data, *station_args)
        plc = ModbusTcpClient("127.0.0.1", port=modbus)
        plc.connect()
        wait_until(lambda: plc.read_discrete_inputs(0, count=7).bits[0], 30, what="Ready")
        handshakes(plc, 10)  # warm-up
        parts = set(args.parts.split(","))
        with studio.transaction() as session:
            first = int(session.scalar(select(func.max(Inspection.id))) or 0)
        times = handshakes(plc, args.handshakes)
        with studio.transaction() as session:
            model = [float(v) for v in session.scalars(select(Inspection.latency_ms).where(Inspection.id > first))]
        result.update(
            trigger_to_result_ms={"p50": pct(times, 50), "p99": pct(times, 99), "max": pct(times, 100)},
            model_ms={"p50": pct(model, 50), "p99": pct(model, 99)},
            overhead_ms={
                "p50": round(pct(times, 50) - pct(model, 50), 2),
                "p99": round(pct(times, 99) - pct(model, 99), 2),
            },
        )
        log(f"handshakes: {result['trigger_to_result_ms']} model {result['model_ms']}")
        if "opcua" in parts:
            with studio.transaction() as session:
                first = int(session.scalar(select(func.max(Inspection.id))) or 0)
            ua_times = opcua_handshakes(opcua, args.opcua)
            with studio.transaction() as session:
                ua_model = [
                    float(v) for v in session.scalars(select(Inspection.latency_ms).where(Inspection.id > first))
                ]
            result["opcua_trigger_to_result_ms"] = {
                "p50": pct(ua_times, 50),
                "p99": pct(ua_times, 99),
                "model_p50": pct(ua_model, 50),
                "model_p99": pct(ua_model, 99),
            }
            log(f"OPC UA handshakes: {result['opcua_trigger_to_result_ms']}")
        switch = changeovers(plc, args.changeovers)
        result["changeover_ms"] = {"p50": pct(switch, 50), "p99": pct(switch, 99), "max": pct(switch, 100)}
        log(f"changeover: {result['changeover_ms']}")
        plc.close()
        wait_until(lambda: undelivered(studio) == 0, 120, 0.1, "the handshake events to drain")

        if "throughput" in parts:
            station = throughput(studio, data, station, station_args, plant, broker, args, result)
        if "chaos" in parts:
            station = chaos(studio, data, station, station_args, plant, broker, args, result)
    finally:
        if station:
            station.stop()
        plant.close()
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)
    model_p99 = result.get("model_ms", {}).get("p99", 0)
    result["must"] = {
        "p99 <= model + 30 ms": result.get("trigger_to_result_ms", {}).get("p99", 1e9) <= model_p99 + 30,
        "lost == 0": result.get("lost") == 0,
        "duplicates_unflagged == 0": result.get("duplicates_unflagged") == 0,
        "events_per_s >= 200": result.get("events_per_s", 0) >= 200,
        "changeover_ms <= 500": result.get("changeover_ms", {}).get("max", 1e9) <= 500,
    }
    print(json.dumps(result), flush=True)


def throughput(
    studio: Studio,
    data: Path,
    station: StationProcess,
    station_args: tuple[str, ...],
    plant: Plant,
    broker: Broker,
    args: argparse.Namespace,
    result: dict[str, Any],
) -> StationProcess:
    """Two figures. ``events_per_s``: events recorded as fast as this process can (inspection row +
    outbox rows, 20 per transaction) while the running station delivers them at QoS 1, from the first
    recorded to the last confirmed and marked delivered (bounded by the recording rate on a busy
    machine). ``drain_per_s``: a backlog recorded while the broker is down, delivered once it is back:
    from the first event at the plant to the last one marked delivered (the outbox worker's own rate)."""
    started = time.perf_counter()
    produce(studio, "line1", args.throughput, rate=0)
    produced_s = time.perf_counter() - started
    wait_until(lambda: undelivered(studio) == 0, 600, 0.01, "the events to be delivered")
    seconds = time.perf_counter() - started
    result["events_per_s"] = round(args.throughput / seconds, 1)
    result["recorded_per_s"] = round(args.throughput / produced_s, 1)
    log(
        f"throughput: {result['events_per_s']} events/s delivered and confirmed ({args.throughput} in "
        f"{seconds:.1f} s; recorded at {result['recorded_per_s']}/s)"
    )
    broker.kill()
    known = set(plant.first_at)
    produce(studio, "line1", args.throughput, rate=0)
    broker.start()
    wait_until(lambda: undelivered(studio) == 0, 600, 0.01, "the backlog to drain")
    done = time.perf_counter()
    with plant.lock:
        first = min(at for event_id, at in plant.first_at.items() if event_id not in known)
    result["drain_per_s"] = round(args.throughput / (done - first), 1)
    log(f"drain: {result['drain_per_s']} events/s ({args.throughput} backlog events after a broker outage)")
    return station


def chaos(
    studio: Studio,
    data: Path,
    station: StationProcess,
    station_args: tuple[str, ...],
    plant: Plant,
    broker: Broker,
    args: argparse.Namespace,
    result: dict[str, Any],
) -> StationProcess:
    """Events recorded while the broker is killed twice and the station once."""
    with studio.transaction() as session:
        first_chaos = int(session.scalar(select(func.max(Inspection.id))) or 0)
    stop = threading.Event()
    made: list[int] = []
    producer = threading.Thread(target=lambda: made.append(produce(studio, "line1", args.events, args.rate, stop)))
    producer.start()
    total_s = args.events / args.rate
    plan = [(0.2, "broker"), (0.45, "station"), (0.7, "broker")]
    started = time.perf_counter()
    for fraction, what in plan:
        time.sleep(max(0.0, started + fraction * total_s - time.perf_counter()))
        if what == "broker":
            broker.kill()
            time.sleep(2.0)
            broker.start()
        else:
            station.stop(signal.SIGKILL)
            time.sleep(1.0)
            station = StationProcess(data, *station_args)
        log(f"chaos: {what} killed and restarted at {time.perf_counter() - started:.1f} s")
    producer.join()
    wait_until(lambda: undelivered(studio) == 0, 900, 0.1, "the chaos events to drain")
    time.sleep(2.0)  # let the last messages arrive
    with studio.transaction() as session:
        from storage.line_tables import OutboxEvent

        produced = set(
            session.scalars(
                select(OutboxEvent.event_id)
                .join(Inspection, Inspection.id == OutboxEvent.inspection_id)
                .where(Inspection.id > first_chaos)
            )
        )
    with plant.lock:
        received = set(plant.ids)
        flagged = sum(count - 1 for count in plant.ids.values())
        unflagged = sum(len(ids) - 1 for ids in plant.by_seq.values())
    result.update(
        chaos_events=len(produced),
        lost=len(produced - received),
        duplicates_flagged=flagged,
        duplicates_unflagged=unflagged,
    )
    log(f"chaos: produced {len(produced)}, lost {len(produced - received)}, flagged duplicates {flagged}")
    return station


if __name__ == "__main__":
    main()
