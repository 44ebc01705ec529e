"""A throwaway PostgreSQL server for tests: initdb + pg_ctl in a temporary folder, socket only."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TemporaryPostgres:
    """Starts a server owned by the ``postgres`` user (initdb refuses root) and stops it."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries not found (./test.sh installs them)")
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="studio-pg-"))
        self.port = _free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.dir / "db"), "-A", "trust", "-U", "studio")
        self.resume()
        return self.url("postgres")

    def halt(self) -> None:
        """Take the server away as a crash would (``pg_ctl stop -m immediate``); its data stays."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.dir / "db"), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """(Re)start the server on the same socket and port; it recovers what was committed."""
        options = f"-p {self.port} -k {self.dir} -c listen_addresses='' -c fsync=off"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.dir / "db"), "-o", options,
                  "-l", str(self.dir / "log"), "-w", "start")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://studio@/{database}?host={self.dir}&port={self.port}"

    def create_database(self, name: str) -> str:
        self._run(str(self.bin_dir / "createdb"), "-h", str(self.dir), "-p", str(self.port), "-U", "studio", name)
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.dir / "db"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running_postgres(log: Callable[[str], None]) -> Iterator[TemporaryPostgres | None]:
    """A started throwaway server for a benchmark, stopped afterwards; ``None`` (the reason logged)
    where PostgreSQL is not installed."""
    try:
        server = TemporaryPostgres()
    except RuntimeError as error:
        log(f"PostgreSQL skipped: {error}")
        yield None
        return
    server.start()
    try:
        yield server
    finally:
        server.stop()
