"""A real uvicorn server on a loopback port (in a thread, on a socket the OS picked) serving a studio
with a trained tool, and tokens of each scope. Clients are real ``httpx`` clients."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from core.api.app import create_app
from core.api.tokens import create_token
from core.audit import SYSTEM, Actor
from core.auth.roles import Role
from core.config import Settings
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tools import create_tool
from core.training import train
from tests.line.conftest import wait_until

ELPV = Path(__file__).resolve().parents[2] / "data" / "elpv"
CAP = 256 * 1024  # the upload cap of the test server: small, so that over-cap bodies are cheap
ADMIN = Actor("tester", "pytest", Role.ADMIN)


class ApiServer:
    """uvicorn.Server in a thread, listening on a socket bound to port 0 (no race for a free port)."""

    def __init__(self, studio: Studio) -> None:
        self.app = create_app(studio, max_upload_bytes=CAP)
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        wait_until(lambda: self.server.started, 30, what="uvicorn to start")
        assert httpx.get(f"{self.url}/healthz", timeout=30).status_code == 200

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.socket.close()


def trained_studio(folder: Path, database_url: str | None = None) -> Studio:
    """A studio with tool ``cells`` trained (fast profile) on the committed ELPV cells."""
    studio = open_studio(Settings(folder, database_url or f"sqlite:///{folder / 'studio.db'}"))
    create_tool(studio, "cells", "good,defective", actor=SYSTEM)
    import_path(studio, "cells", ELPV, actor=SYSTEM)
    train(studio, "cells", profile="fast", actor=SYSTEM)
    return studio


@pytest.fixture(scope="session")
def api_trained_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("api-trained") / "data"
    trained_studio(folder).engine.dispose()
    return folder


@pytest.fixture(scope="module")
def api_studio(api_trained_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """A private copy of the trained data folder for one test module."""
    folder = tmp_path_factory.mktemp("api") / "data"
    shutil.copytree(api_trained_data, folder)
    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    yield studio
    studio.engine.dispose()


@pytest.fixture(scope="module")
def server(api_studio: Studio) -> Iterator[ApiServer]:
    running = ApiServer(api_studio)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tokens(api_studio: Studio) -> dict[str, str]:
    """A token of each scope: ``read``, ``inspect``, ``admin``."""
    return {scope: create_token(api_studio, f"test-{scope}", scope, ADMIN)[1] for scope in ("read", "inspect", "admin")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def good_image() -> bytes:
    return sorted((ELPV / "good").glob("*.png"))[0].read_bytes()


def defective_image() -> bytes:
    return sorted((ELPV / "defective").glob("*.png"))[0].read_bytes()
