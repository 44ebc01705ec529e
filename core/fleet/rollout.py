"""Rollouts: a promotion (or a recipe switch) tells every station running the tool.

``announce`` runs inside the promoting transaction: it bumps the tool's row in ``rollout_signal``
and, on PostgreSQL, issues ``NOTIFY`` on :data:`CHANNEL`, which PostgreSQL delivers only when that
transaction commits. :class:`RolloutWatcher` (one thread per station) LISTENs on a connection of its
own and, whether woken or every ``poll_s`` (SQLite, or while the listening connection is lost),
compares the generations of the tools it runs and calls back with those that changed. Tools whose new
models did not load (the object store unreachable, say) are tried again with backoff
(:data:`RETRY_FIRST_S` doubling up to :data:`RETRY_MAX_S`) until they load or change again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.errors import StudioError
from core.studio import Studio
from storage.fleet_tables import RolloutSignal
from storage.tables import utc_now

CHANNEL = "studio_rollout"
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0
log = logging.getLogger("studio.fleet.rollout")


def _notify(session: Session, payload: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload})


def announce(session: Session, tool: str) -> None:
    """In the promoting transaction: the tool's active models changed (sent only if it commits)."""
    row = session.get(RolloutSignal, tool, with_for_update=True)
    if row is None:
        session.add(RolloutSignal(tool=tool, generation=1, changed_at=utc_now()))
    else:
        row.generation, row.changed_at = row.generation + 1, utc_now()
    _notify(session, f"tool:{tool}")


def announce_recipe(session: Session, station: str) -> None:
    """In the switching transaction: the station's recipe changed (its heartbeat also polls it)."""
    _notify(session, f"station:{station}")


def generations(studio: Studio, tools: list[str]) -> dict[str, int]:
    """Each tool's rollout generation (0 before its first announced change)."""
    with studio.transaction() as session:
        rows = session.execute(select(RolloutSignal.tool, RolloutSignal.generation)
                               .where(RolloutSignal.tool.in_(tools))).all()
    found = {tool: generation for tool, generation in rows}
    return {tool: found.get(tool, 0) for tool in tools}


OnTools = Callable[[list[str]], list[str] | None]  # the tools whose new models did not load


class RolloutWatcher(threading.Thread):
    """Calls ``on_tools(changed)`` when tools of ``tools()`` change (and again, with backoff, for those it
    returns as not loaded) and ``on_recipe()`` when the station's recipe is switched; never raises
    (errors are logged, then polling continues)."""

    def __init__(self, studio: Studio, station: str, tools: Callable[[], list[str]],
                 on_tools: OnTools, on_recipe: Callable[[], None] | None = None,
                 poll_s: float = 1.0) -> None:
        super().__init__(name="rollout", daemon=True)
        self.studio, self.station, self.tools, self.poll_s = studio, station, tools, poll_s
        self.on_tools, self.on_recipe = on_tools, on_recipe
        self.stopping = threading.Event()
        self.listening = False  # True while a LISTEN connection is up
        self.seen: dict[str, int] = {}
        self.failed: set[str] = set()  # tools whose last load failed: retried at retry_at
        self.retry_at = 0.0
        self._retry_s = RETRY_FIRST_S

    def stop(self) -> None:
        self.stopping.set()

    def check(self) -> None:
        """Compare generations with those seen; call back with the changed tools and the failed ones due."""
        current = generations(self.studio, self.tools())
        changed = [tool for tool, gen in current.items() if tool in self.seen and gen != self.seen[tool]]
        self.seen = current
        due = self.failed & set(current) if time.monotonic() >= self.retry_at else set()
        todo = sorted(set(changed) | due)
        if not todo:
            return
        failed = set(self.on_tools(todo) or ())
        self.failed = (self.failed - set(todo)) | failed
        if failed:
            self._retry_s = RETRY_FIRST_S if set(changed) & failed else min(self._retry_s * 2, RETRY_MAX_S)
            self.retry_at = time.monotonic() + self._retry_s
            log.info("station %s: %s did not load; retrying in %.0f s", self.station, ", ".join(sorted(failed)),
                     self._retry_s)

    def _safe(self, action: Callable[[], None]) -> None:
        try:
            action()
        except StudioError as error:
            log.warning("rollout watcher of %s: %s", self.station, error)
        except Exception:  # noqa: BLE001 - the watcher must keep running
            log.exception("rollout watcher of %s", self.station)

    def _listen(self) -> None:
        """LISTEN until stopped or the connection fails; check on each notification and every poll_s."""
        import psycopg

        url = make_url(self.studio.settings.database_url).set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening = True
            self._safe(self.check)  # what changed before LISTEN took effect
            while not self.stopping.is_set():
                payloads = [n.payload for n in conn.notifies(timeout=self.poll_s, stop_after=1)]
                if any(p == f"station:{self.station}" for p in payloads) and self.on_recipe:
                    self._safe(self.on_recipe)
                self._safe(self.check)

    def run(self) -> None:
        postgres = self.studio.engine.dialect.name == "postgresql"
        self._safe(self.check)
        while not self.stopping.is_set():
            if postgres:
                try:
                    self._listen()
                except Exception as error:  # noqa: BLE001 - a lost connection: poll until it is back
                    log.warning("rollout watcher of %s: LISTEN failed (%s); polling", self.station, error)
                finally:
                    self.listening = False
            if self.stopping.wait(self.poll_s):
                return
            self._safe(self.check)
