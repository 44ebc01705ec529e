"""``python -m core api`` as its own process (its access log never holds a token), and the API on
PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.api.tokens import create_token
from core.config import Settings
from core.studio import open_studio
from tests.core.api.conftest import ADMIN, ApiServer, bearer, good_image, trained_studio
from tests.line.conftest import free_port, wait_until
from tests.postgres import TemporaryPostgres

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow  # trains a tool and runs a real server


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_python_m_core_api_serves_and_logs_no_token(api_trained_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    shutil.copytree(api_trained_data, folder)
    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    _, token = create_token(studio, "cli", "inspect", ADMIN)
    studio.engine.dispose()
    port, log = free_port(), tmp_path / "api.log"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(STUDIO_DATA_DIR=str(folder), OMP_NUM_THREADS="1")
    with open(log, "wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "core", "api", "--port", str(port)], cwd=ROOT, env=env,
                                   stdout=err, stderr=err)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{url}/healthz") or process.poll() is not None, 90, 0.1, "the API to start")
        assert process.poll() is None, log.read_text()
        tools = httpx.get(f"{url}/v1/tools", headers=bearer(token), timeout=30)
        assert tools.status_code == 200 and tools.json()[0]["name"] == "cells"
        inspected = httpx.post(f"{url}/v1/tools/cells/inspect?record=false", content=good_image(), timeout=60,
                               headers={**bearer(token), "Content-Type": "image/png"})
        assert inspected.status_code == 200 and inspected.json()["inspection_id"] is None
        assert httpx.get(f"{url}/v1/tools", headers=bearer("vis_wrong"), timeout=30).status_code == 401
    finally:
        process.terminate()
        process.wait(30)
    logged = log.read_text()
    assert "Finished server process" in logged  # a graceful stop (uvicorn then re-raises SIGTERM: exit -15)
    assert "GET /v1/tools HTTP/1.1\" 200" in logged and "POST /v1/tools/cells/inspect?record=false" in logged
    assert token not in logged and token[12:] not in logged and "vis_wrong" not in logged


def test_the_api_on_postgresql(postgres: TemporaryPostgres, tmp_path: Path) -> None:
    studio = trained_studio(tmp_path / "data", postgres.create_database("api_pg"))
    _, token = create_token(studio, "pg", "inspect", ADMIN)
    server = ApiServer(studio)
    server.start()
    try:
        answer = httpx.post(f"{server.url}/v1/tools/cells/inspect", content=good_image(), timeout=60,
                            headers={**bearer(token), "Content-Type": "image/png"}).json()
        stored = httpx.get(f"{server.url}/v1/inspections/{answer['inspection_id']}", headers=bearer(token)).json()
        assert (stored["decision"], stored["score"]) == (answer["decision"], pytest.approx(answer["score"], abs=1e-6))
        assert httpx.get(f"{server.url}/healthz").json()["database"] == "ok"
    finally:
        server.stop()
        studio.engine.dispose()
