"""Plant benchmark (issue 21): station processes on one PostgreSQL and one S3 object store.

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/fleet.py             # 6 stations x 10/s for 5 minutes
    .venv/bin/python bench/fleet.py --minutes 1 --outage-s 15 --cards 1000  # a short run

Real components: a throwaway PostgreSQL server (``tests/postgres.py``), a moto S3 server *process*
(``python -m moto.server``) reached through the production boto3 code, and one OS process per station
and per tablet. The moto server journals every request (its recorder, ``MOTO_ENABLE_RECORDING``); after
a kill -9 it is started again and replays its journal, as a store with durable disks comes back.

1. A tool trained twice (``fast`` profile, seeds 0 and 1) by an engineer's studio: both artifacts are
   published to the object store with their manifest; version 1 is active.
2. ``--stations`` processes, each a studio of its own (its own data folder: nothing shared on disk), load
   the tool the way a station does (``core.line.judge.load_tool``: artifact fetched from the object store,
   every file checked against its hash), run the fleet agent (heartbeat + rollout watcher, LISTEN /
   NOTIFY) and record ``--rate`` inspections per second for ``--minutes`` through the station's recorder
   (``studio.recorder`` with the station's PNG encoder): every inspection keeps a unique ~30 KB crop
   (100 x 100 RGB noise) and its 32 x 32 defect map. No inference: the model is not run.
   ``record_ms`` is each ``recorder.record`` call (image + map to the store, row + rollups committed).
3. The object store is killed (kill -9) in the middle of the run for ``--outage-s`` seconds: stations keep
   recording, their objects go to the local spool, the Fleet heartbeat says so (degraded, "spooled"),
   and the spool uploads when the store is back. ``catch_up_s``: store back -> every spool empty.
4. Two promotions (version 2 at 20 % of the run, a rollback to version 1 at 85 %): ``rollout_s`` is from
   just before ``promote`` is called to the moment each station has the version loaded.
5. After the run: ``lost`` = inspections a station recorded minus rows in the database, plus images still
   in a spool; ``orphans`` = rows whose crop or map is not in the bucket + image objects in the bucket that
   no row references; ``verified``: a sample of objects read back and checked against their hash.
6. ``--tablets`` processes claim every card of one queue of ``--cards`` (``tests/fleet/claims.py``):
   ``double_claims`` = claims - distinct cards.

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
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

import numpy as np  # noqa: E402

from core.audit import SYSTEM
from core.config import Settings  # noqa: E402
from core.studio import Studio, open_studio  # noqa: E402

TOOL = "cells"
ELPV = ROOT / "tests" / "data" / "elpv"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench-key-id", "AWS_SECRET_ACCESS_KEY": "bench-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Any, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def moto_server_main(port: int) -> None:
    """``moto.server`` whose journal lines are written whole: moto's recorder appends from every request
    thread without a lock, which interleaves concurrent lines; one lock around it keeps each line whole."""
    from moto.moto_api._internal.recorder.models import Recorder
    from moto.server import main as moto_main

    record, lock = Recorder._record_request, threading.Lock()

    def locked(self: Any, *args: Any, **kwargs: Any) -> None:
        with lock:
            record(self, *args, **kwargs)

    Recorder._record_request = locked  # type: ignore[method-assign]
    moto_main(["-H", "127.0.0.1", "-p", str(port)])


def drop_torn_tail(journal: Path) -> int:
    """Cut a last line a kill -9 left half-written (its request was never answered: the client retries);
    returns the bytes dropped."""
    data = journal.read_bytes() if journal.exists() else b""
    keep = data.rfind(b"\n") + 1
    if keep < len(data):
        with open(journal, "r+b") as handle:
            handle.truncate(keep)
    return len(data) - keep


class MotoProcess:
    """A moto S3 server process on a loopback port, journaling its requests to ``journal`` (moto's recorder);
    after a kill -9, ``start`` + ``replay`` rebuild its objects from the journal."""

    def __init__(self, folder: Path) -> None:
        self.port, self.journal, self.log = free_port(), folder / "s3-journal.jsonl", folder / "moto.log"
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **CREDENTIALS, "MOTO_ENABLE_RECORDING": "True",
               "MOTO_RECORDER_FILEPATH": str(self.journal)}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, __file__, "--moto-server", str(self.port)], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)

        def up() -> bool:
            with socket.socket() as sock:
                sock.settimeout(0.2)
                return sock.connect_ex(("127.0.0.1", self.port)) == 0
        wait_for(up, 60, "the moto server to listen")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        drop_torn_tail(self.journal)  # before the restarted server appends to it

    def replay(self) -> None:
        """Rebuild the store from its journal (after a restart)."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/replay-recording", method="POST")
        with urllib.request.urlopen(request, timeout=3600) as response:
            response.read()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


# --- the station process -------------------------------------------------------------------------------

def noise_crop(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)


def station_main(config: dict[str, Any]) -> None:
    """One station: load the tool from the object store, beat, follow rollouts, record at a fixed rate."""
    from core.fleet.agent import FleetAgent
    from core.fleet.heartbeat import Beat, store_problem
    from core.inspect.decision import Verdict
    from core.inspect.engine import Inspection, ModelVerdict
    from core.inspect.recorder import RecordContext
    from core.line.judge import ToolSetup, fast_png, load_tool
    from core.tool_settings import ToolSettings

    name, work = config["name"], Path(config["work"])
    studio = open_studio(Settings(work / name, config["database_url"], name, config["store_url"]))
    studio.recorder.encode_image = fast_png  # the station's encoder
    state: dict[str, Any] = {"setup": load_tool(studio, {"tool": TOOL}), "loaded": [], "recorded": 0}
    lock = threading.Lock()

    def on_tools(changed: list[str]) -> None:
        try:
            setup: ToolSetup = load_tool(studio, {"tool": TOOL})
        except Exception as error:  # noqa: BLE001 - a rollout that fails is reported, the old model stays
            state["loaded"].append({"at": time.time(), "error": str(error)})
            return
        with lock:
            state["setup"] = setup
        state["loaded"].append({"at": time.time(), "versions": setup.models.version_ids})

    def snapshot() -> Beat:
        problem = store_problem(studio)
        return Beat(name=name, models={TOOL: state["setup"].models.version_ids}, fps=config["rate"],
                    state="degraded" if problem else "ok", reason=problem, heartbeat_s=1.0)

    spool: dict[str, Any] = {"max": 0, "emptied_at": [], "stop": threading.Event()}

    def watch_spool() -> None:  # when the spool empties after a backlog (the catch-up after an outage)
        before = 0
        while not spool["stop"].wait(0.1):
            now = studio.images.objects.pending()
            spool["max"] = max(spool["max"], now)
            if before and not now:
                spool["emptied_at"].append(time.time())
            before = now

    threading.Thread(target=watch_spool, daemon=True).start()
    agent = FleetAgent(studio, name, snapshot, lambda: [TOOL], on_tools, heartbeat_s=1.0)
    agent.start()
    wait_for(lambda: agent.watcher.listening, 60, "LISTEN")
    (work / f"{name}.ready").touch()
    go = work / "go"
    wait_for(go.exists, 600, "the start signal", every=0.01)
    t0 = float(go.read_text())
    rng = np.random.default_rng(config["seed"])
    pyrng = random.Random(config["seed"])
    settings = ToolSettings(audit_share=0.0, keep_pass_share=1.0)  # every crop and map is kept
    latencies: list[float] = []
    errors: list[str] = []
    n_total = int(config["rate"] * config["seconds"])
    for i in range(n_total):
        delay = t0 + i / config["rate"] - time.time()
        if delay > 0:
            time.sleep(delay)
        with lock:
            setup = state["setup"]
        version = next(iter(setup.models.version_ids.values()))
        failed = pyrng.random() < 0.1
        verdict = Verdict("fail", "defective", 0.9) if failed else Verdict("pass", "good", 0.1)
        judged = Inspection(TOOL, setup.tool_id, verdict,
                            {"classifier": ModelVerdict("classifier", version, 0.5, 0.1, verdict)}, {}, False,
                            {"good": 1 - verdict.score, "defective": verdict.score}, (0, 0, 100, 100),
                            noise_crop(rng), map=rng.random((32, 32), dtype=np.float32), settings=settings)
        started = time.perf_counter()
        try:
            studio.recorder.record(judged, RecordContext(station=name))
        except Exception as error:  # noqa: BLE001 - counted: an inspection not recorded is lost
            errors.append(str(error)[:200])
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        state["recorded"] += 1
    ended = time.time()
    drained = studio.images.objects.drain(timeout=config["drain_s"]) if hasattr(studio.images.objects, "drain") \
        else True
    time.sleep(0.3)  # the spool watcher notes when it emptied
    spool["stop"].set()
    agent.stop()
    agent.beat_once()  # the Fleet page's last word on this station
    result = {"name": name, "attempted": n_total, "recorded": state["recorded"], "errors": errors[:5],
              "n_errors": len(errors), "record_ms": latencies, "t0": t0, "ended": ended, "drained": drained,
              "spool_left": studio.images.objects.pending(), "spool_max": spool["max"],
              "spool_emptied_at": spool["emptied_at"],
              "loaded": state["loaded"], "behind_s": round(ended - (t0 + n_total / config["rate"]), 2)}
    (work / f"{name}.json").write_text(json.dumps(result))
    studio.engine.dispose()


# --- the conductor -------------------------------------------------------------------------------------

def train_versions(studio: Studio) -> tuple[int, int]:
    from core.samples import import_path
    from core.tools import create_tool
    from core.training import train

    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    import_path(studio, TOOL, ELPV, actor=SYSTEM)
    first = train(studio, TOOL, profile="fast", seed=0, actor=SYSTEM).version_id
    second = train(studio, TOOL, profile="fast", seed=1, activate=False, actor=SYSTEM).version_id
    return first, second


def watch_outage(studio: Studio, moto: MotoProcess, at: float, seconds: float, log: dict[str, Any]) -> None:
    """Kill the store at ``at`` (wall clock), bring it back after ``seconds``, replay its journal; note what
    the Fleet heartbeats said meanwhile."""
    from core.fleet.heartbeat import fleet

    time.sleep(max(0.0, at - time.time()))
    moto.kill()
    log["killed_at"] = time.time()
    said: set[str] = set()
    while time.time() < log["killed_at"] + seconds:
        said |= {row["name"] for row in fleet(studio) if row["state"] == "degraded" and "spooled" in (row["reason"]
                                                                                                       or "")}
        time.sleep(1.0)
    log["fleet_said_spooled"] = sorted(said)
    moto.start()
    log["back_at"] = time.time()
    moto.replay()
    log["replayed_s"] = round(time.time() - log["back_at"], 1)


def check_store(studio: Studio, moto: MotoProcess, bucket: str, sample: int, seed: int) -> dict[str, Any]:
    """Rows without objects, objects without rows, and a sample of objects read back and hash-checked."""
    from sqlalchemy import func, select

    from storage.objects import S3Objects
    from storage.objects.s3 import make_client
    from storage.store_refs import referenced_images
    from storage.tables import Inspection

    remote = S3Objects(make_client(moto.endpoint), bucket, "plant/images")
    in_bucket = set(remote.keys())
    with studio.transaction() as session:
        used = referenced_images(session)
        kept = session.scalar(select(func.count()).select_from(Inspection).where(Inspection.image_key.is_not(None)))
        maps = session.scalar(select(func.count()).select_from(Inspection).where(Inspection.map_key.is_not(None)))
    missing = used - in_bucket
    unreferenced = in_bucket - used
    chosen = random.Random(seed).sample(sorted(in_bucket & used), min(sample, len(in_bucket & used)))
    damaged = 0
    for key in chosen:
        try:
            remote.get(key)
        except OSError:
            damaged += 1
    return {"objects_in_bucket": len(in_bucket), "rows_with_crop": kept, "rows_with_map": maps,
            "rows_without_objects": len(missing), "objects_without_rows": len(unreferenced),
            "verified": len(chosen), "damaged": damaged}


def tablets(settings: Settings, cards: int, n: int) -> dict[str, Any]:
    from tests.fleet.claims import claim_all, fill_queue

    fill_queue(settings, TOOL, cards)
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with context.Manager() as manager, context.Pool(n) as pool:
        start = manager.Barrier(n)
        results = pool.starmap(claim_all, [(settings, f"tablet{i}", start) for i in range(n)])
    seconds = time.perf_counter() - started
    claimed = [i for result in results for i in result]
    return {"cards": cards, "tablets": n, "claimed": len(claimed), "double_claims": len(claimed) - len(set(claimed)),
            "per_tablet": [len(r) for r in results], "claims_per_s": round(len(claimed) / seconds, 1)}


def conduct(args: argparse.Namespace) -> dict[str, Any]:
    from core.fleet.heartbeat import fleet
    from core.model_versions import promote, rollback
    from storage.objects.s3 import make_client
    from tests.actors import ENGINEER
    from tests.postgres import TemporaryPostgres

    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    os.environ.update(CREDENTIALS)
    postgres, moto = TemporaryPostgres(), MotoProcess(work)
    stations: list[subprocess.Popen[bytes]] = []
    try:
        postgres.start()
        database_url = postgres.create_database("plant")
        moto.start()
        os.environ["STUDIO_S3_ENDPOINT"] = moto.endpoint
        bucket = "plant"
        make_client(moto.endpoint).create_bucket(Bucket=bucket)
        store_url = f"s3://{bucket}/plant"
        engineer = open_studio(Settings(work / "engineer", database_url, "engineer", store_url))
        t = time.perf_counter()
        first, second = train_versions(engineer)
        print(f"trained versions {first} and {second} in {time.perf_counter() - t:.1f} s", flush=True)

        seconds = args.minutes * 60
        for i in range(args.stations):
            config = {"name": f"st{i + 1}", "work": str(work), "database_url": database_url, "store_url": store_url,
                      "rate": args.rate, "seconds": seconds, "seed": args.seed + i, "drain_s": args.drain_s}
            log = open(work / f"st{i + 1}.log", "wb")  # noqa: SIM115 - the child owns it
            stations.append(subprocess.Popen([sys.executable, __file__, "--station-config", json.dumps(config)],
                                             stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()))
        wait_for(lambda: all((work / f"st{i + 1}.ready").exists() for i in range(args.stations))
                 or any(p.poll() is not None for p in stations), 600, "every station to load and LISTEN")
        if any(p.poll() is not None for p in stations):
            raise RuntimeError(f"a station process ended early: see {work}/st*.log")
        t0 = time.time() + 2.0
        (work / "go").write_text(repr(t0))
        print(f"{args.stations} stations recording {args.rate}/s each for {seconds:.0f} s", flush=True)

        outage: dict[str, Any] = {}
        killer = threading.Thread(target=watch_outage, args=(engineer, moto, t0 + seconds / 2 - args.outage_s / 2,
                                                             args.outage_s, outage))
        killer.start()
        promotions = []
        for share, action in ((0.2, "promote"), (0.85, "rollback")):
            time.sleep(max(0.0, t0 + share * seconds - time.time()))
            at = time.time()
            if action == "promote":
                promote(engineer, TOOL, second, ENGINEER)
                promotions.append({"at": at, "version": second})
            else:
                promotions.append({"at": at, "version": rollback(engineer, TOOL, ENGINEER, version_id=first)})
        killer.join()
        print(f"store killed for {args.outage_s} s, journal replayed in {outage['replayed_s']} s", flush=True)
        for process in stations:
            process.wait()
        results = [json.loads((work / f"st{i + 1}.json").read_text()) for i in range(args.stations)]
        fleet_rows = fleet(engineer)

        rollout_s = []
        for promotion in promotions:
            for result in results:
                loaded = [e["at"] for e in result["loaded"] if e["at"] >= promotion["at"]
                          and e.get("versions", {}).get("classifier") == promotion["version"]]
                rollout_s.append(round(min(loaded) - promotion["at"], 3) if loaded else float("inf"))
        from sqlalchemy import func, select

        from storage.tables import Inspection
        with engineer.transaction() as session:
            rows = dict(session.execute(select(Inspection.station, func.count()).group_by(Inspection.station)).all())
        lost = sum(r["attempted"] - rows.get(r["name"], 0) for r in results) + sum(r["spool_left"] for r in results)
        store = check_store(engineer, moto, bucket, args.verify, args.seed)
        record_ms = [ms for r in results for ms in r["record_ms"]]
        emptied = [min((t for t in r["spool_emptied_at"] if t >= outage["back_at"]), default=float("inf"))
                   for r in results]
        catch_up = max(emptied) - outage["back_at"]
        claims = tablets(engineer.settings, args.cards, args.tablets)
        engineer.engine.dispose()
        return {
            "bench": "fleet", "stations": args.stations, "rate_per_station": args.rate, "minutes": args.minutes,
            "inspections": sum(r["attempted"] for r in results), "recorded": sum(r["recorded"] for r in results),
            "rows": sum(rows.values()), "lost": lost, "orphans": store["rows_without_objects"]
            + store["objects_without_rows"], **store,
            "record_ms_p50": round(pct(record_ms, 50), 1), "record_ms_p99": round(pct(record_ms, 99), 1),
            "record_ms_max": round(max(record_ms), 1), "behind_s_max": max(r["behind_s"] for r in results),
            "outage_s": args.outage_s, "journal_replay_s": outage["replayed_s"],
            "catch_up_s": round(catch_up, 1),
            "caught_up_while_recording": all(t < r["ended"] for t, r in zip(emptied, results, strict=True)),
            "spool_max": max(r["spool_max"] for r in results),
            "fleet_said_spooled": len(outage["fleet_said_spooled"]),
            "rollout_s": rollout_s, "rollout_s_p100": max(rollout_s),
            "rollout_errors": [e["error"] for r in results for e in r["loaded"] if "error" in e],
            "fleet_states_after": {row["name"]: row["state"] for row in fleet_rows},
            **{f"tablets_{k}": v for k, v in claims.items()},
            "load_1m": os.getloadavg()[0], "cpus": os.cpu_count(), "python": platform.python_version(),
            "seed": args.seed,
        }
    finally:
        for process in stations:
            if process.poll() is None:
                process.kill()
        moto.stop()
        postgres.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=6)
    parser.add_argument("--rate", type=float, default=10.0, help="inspections per second per station")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--outage-s", type=float, default=60.0, help="how long the object store is down")
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--tablets", type=int, default=4)
    parser.add_argument("--verify", type=int, default=1000, help="objects read back and hash-checked")
    parser.add_argument("--drain-s", type=float, default=600.0, help="how long a station waits for its spool")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, journal)")
    parser.add_argument("--station-config", help=argparse.SUPPRESS)
    parser.add_argument("--moto-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.moto_server:
        moto_server_main(args.moto_server)
        return
    if args.station_config:
        station_main(json.loads(args.station_config))
        return
    result = conduct(args)
    brief = {k: v for k, v in result.items() if k != "rollout_s"}
    for key, value in brief.items():
        print(f"{key:>24}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
