"""REST API speed: a real uvicorn server (``python -m core api`` as its own process) on loopback,
against the in-process engine on the same images, measured side by side in one run.

A tool is trained on the 40 committed ELPV cells (tests/data/elpv; ``--profile``, default the
default profile) in a temporary studio; the server serves that data folder. In alternating rounds:

* **in-process** and **API, 1 client**, interleaved image by image (so that both see the same load
  of a shared machine; which goes first alternates): ``core.inspect.service.predict_image`` called in
  this process (decode + inspect, ``record`` as given), and the same image POSTed to the server (raw
  PNG body, bearer token, one keep-alive httpx client), wall time per call as the caller sees it;
* **API, 4 clients**: 4 threads, each with its own client, POST the images at once; requests per
  second over the whole burst and the p50 / p99 request latency (which includes queueing: 4 clients
  share 2 cores).

``overhead_ratio`` = API p50 with 1 client / in-process p50 (the same images, the same ``record``
flag): what HTTP, the token check and the upload add to one inspection. Medians over rounds are
reported with each round's value. The last line is one JSON object.

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/api.py [--rounds 3] [--passes 2] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.api.tokens import create_token  # noqa: E402
from core.audit import SYSTEM  # noqa: E402
from core.config import Settings  # noqa: E402
from core.inspect.service import predict_image  # noqa: E402
from core.samples import import_path  # noqa: E402
from core.studio import Studio, open_studio  # noqa: E402
from core.tools import create_tool  # noqa: E402
from core.training import train  # noqa: E402
from models.profiles import DEFAULT_PROFILE, PROFILES  # noqa: E402

CELLS = ROOT / "tests" / "data" / "elpv"
CLIENTS = 4


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(STUDIO_DATA_DIR=str(folder))
    with open(log_file, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "core", "api", "--port", str(port), "--log-level",
                                    "warning"], cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API did not start:\n{log_file.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the API did not answer /healthz within 120 s")


def in_process(studio: Studio, data: bytes, record: bool) -> float:
    started = time.perf_counter()
    predict_image(studio, "cells", "upload", data, record=record, actor=SYSTEM)
    return (time.perf_counter() - started) * 1000


def post(client: httpx.Client, url: str, data: bytes) -> float:
    started = time.perf_counter()
    response = client.post(url, content=data, headers={"Content-Type": "image/png"})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"the API answered {response.status_code}: {response.text[:500]}")
    return elapsed


def interleaved(studio: Studio, url: str, token: str, images: list[bytes], record: bool) -> tuple[list[float],
                                                                                                   list[float]]:
    """Per image, the in-process time and the API time (one client), the order alternating."""
    engine, api = [], []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        for index, data in enumerate(images):
            if index % 2:
                api.append(post(client, url, data))
                engine.append(in_process(studio, data, record))
            else:
                engine.append(in_process(studio, data, record))
                api.append(post(client, url, data))
    return engine, api


def concurrent(url: str, token: str, images: list[bytes]) -> tuple[float, list[float]]:
    """Requests per second and every request's latency, ``CLIENTS`` clients sending all ``images`` each."""
    results: list[list[float]] = [[] for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS + 1)

    def client(index: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            post(http, url, images[index])  # connect and warm before the clock starts
            start.wait()
            results[index] = [post(http, url, data) for data in images[index:] + images[:index]]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies = [t for r in results for t in r]
    return len(latencies) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES))
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians are reported)")
    parser.add_argument("--passes", type=int, default=2, help="passes over the 40 cells per measurement")
    parser.add_argument("--record", action="store_true", help="record every inspection (default: record=false)")
    args = parser.parse_args()
    images = [p.read_bytes() for p in sorted(CELLS.rglob("*.png"))] * args.passes
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
        create_tool(studio, "cells", "good,defective", actor=SYSTEM)
        import_path(studio, "cells", CELLS, actor=SYSTEM)
        train(studio, "cells", profile=args.profile, seed=0, actor=SYSTEM)
        _, token = create_token(studio, "bench", "inspect", SYSTEM)
        port = free_port()
        server = start_server(folder, port, Path(tmp) / "api.log")
        url = f"http://127.0.0.1:{port}/v1/tools/cells/inspect?record={str(args.record).lower()}"
        try:
            interleaved(studio, url, token, images[:5], args.record)  # warm: models loaded, caches filled
            rounds: list[dict[str, float]] = []
            for index in range(args.rounds):
                engine, api = interleaved(studio, url, token, images, args.record)
                measured = {"engine_p50_ms": statistics.median(engine), "api_p50_ms": statistics.median(api)}
                rps, latencies = concurrent(url, token, images)
                measured.update(rps_4=rps, p50_ms_4=float(np.percentile(latencies, 50)),
                                p99_ms_4=float(np.percentile(latencies, 99)))
                measured["overhead_ratio"] = measured["api_p50_ms"] / measured["engine_p50_ms"]
                rounds.append(measured)
                log(f"round {index + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in measured.items()))
        finally:
            server.terminate()
            server.wait(30)
            studio.engine.dispose()
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    result = {
        "profile": args.profile, "record": args.record, "rounds": args.rounds, "requests_per_measure": len(images),
        "clients": CLIENTS, "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "engine_p50_ms": round(median["engine_p50_ms"], 2), "api_p50_ms": round(median["api_p50_ms"], 2),
        "overhead_ms": round(median["api_p50_ms"] - median["engine_p50_ms"], 2),
        "overhead_ratio": round(statistics.median(r["overhead_ratio"] for r in rounds), 3),
        "rps_4_clients": round(median["rps_4"], 2), "p50_ms_4_clients": round(median["p50_ms_4"], 1),
        "p99_ms_4_clients": round(median["p99_ms_4"], 1),
        "spread": {key: [round(r[key], 3) for r in rounds] for key in rounds[0]},
    }
    print("| measure | median | rounds |")
    print("| --- | --- | --- |")
    for key in rounds[0]:
        print(f"| {key} | {median[key]:.3f} | {', '.join(f'{r[key]:.3f}' for r in rounds)} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
