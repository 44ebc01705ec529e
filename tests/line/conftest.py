"""Real components for the line tests: a Mosquitto broker, a webhook receiver, free loopback ports,
a trained tool (fast profile) and the station service as a subprocess. No protocol is mocked."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.audit import SYSTEM
from core.config import Settings
from core.studio import Studio, open_studio

ROOT = Path(__file__).resolve().parents[2]
ELPV = ROOT / "tests" / "data" / "elpv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Any, timeout: float = 30.0, every: float = 0.02, what: str = "condition") -> Any:
    """Poll ``condition()`` until it is truthy (returns it) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """A real broker on a loopback port; ``kill()`` is kill -9, ``start()`` brings it back on the same port."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None) -> None:
        self.folder, self.port, self.users = folder, free_port(), users
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"user {getpass.getuser()}",  # as root: keep root (files in tmp)
            "persistence true",
            f"persistence_location {folder}/",
            "autosave_interval 1",
            "autosave_on_changes true",
        ]
        if users:
            passwords = folder / "passwords"
            passwords.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
            passwords.chmod(0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=open(self.folder / "log.txt", "ab")
        )
        wait_until(lambda: port_open(self.port), 15, what="mosquitto to listen")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}/studio"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if not shutil.which("mosquitto"):
        pytest.fail("mosquitto is not installed: ./test.sh installs it (apt-get install mosquitto mosquitto-clients)")
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.kill()


class Receiver:
    """A real HTTP server collecting webhook posts; ``fail_next`` answers 500 that many times."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(500)
                else:
                    receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="session")
def trained_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with tool ``cells`` trained (fast profile) on the committed ELPV cells."""
    from core.samples import import_path
    from core.tools import create_tool
    from core.training import train

    folder = tmp_path_factory.mktemp("line-trained") / "data"
    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    create_tool(studio, "cells", "good,defective", actor=SYSTEM)
    import_path(studio, "cells", ELPV, actor=SYSTEM)
    train(studio, "cells", profile="fast", actor=SYSTEM)
    studio.engine.dispose()
    return folder


@pytest.fixture
def line_studio(trained_data: Path, tmp_path: Path) -> Studio:
    """A private copy of the trained data folder (each test may change it)."""
    folder = tmp_path / "data"
    shutil.copytree(trained_data, folder)
    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    yield studio  # type: ignore[misc]
    studio.engine.dispose()


@pytest.fixture(scope="session")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder source: the committed cells, good and defective."""
    folder = tmp_path_factory.mktemp("frames")
    for path in sorted(ELPV.rglob("*.png")):
        shutil.copy(path, folder / f"{path.parent.name}_{path.name}")
    return folder


class StationProcess:
    """``python -m core station run`` as a subprocess; stopped by its own PID."""

    def __init__(self, data_dir: Path, *args: str, database_url: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update(STUDIO_DATA_DIR=str(data_dir), OMP_NUM_THREADS="1")
        if database_url:
            env["DATABASE_URL"] = database_url
        self.log = data_dir / f"station-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "core", "station", "run", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=open(self.log, "wb"),
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the ready line (or EOF when it failed to start)
        if not line:
            self.process.wait(30)
            raise AssertionError(f"station did not start: {self.log.read_text()[-3000:]}")
        self.ready = json.loads(line)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")
