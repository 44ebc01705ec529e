"""A station's fleet threads: the heartbeat (what it runs, how it is) and the rollout watcher.

Both run beside inspection and never block it: the heartbeat writes one short row per period, and
a rollout's models are loaded in the watcher's thread before the station swaps them in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.fleet.heartbeat import Beat, beat
from core.fleet.rollout import OnTools, RolloutWatcher
from core.studio import Studio

log = logging.getLogger("studio.fleet.agent")


class FleetAgent:
    """``snapshot()`` is called once per heartbeat; ``on_tools(changed)`` when a tool it runs
    (``tools()``) is promoted (it returns the tools that did not load: retried with backoff);
    ``on_recipe()`` when its recipe is switched (NOTIFY only)."""

    def __init__(self, studio: Studio, name: str, snapshot: Callable[[], Beat], tools: Callable[[], list[str]],
                 on_tools: OnTools, on_recipe: Callable[[], None] | None = None,
                 heartbeat_s: float = 1.0, poll_s: float = 1.0) -> None:
        self.studio, self.name, self.snapshot, self.heartbeat_s = studio, name, snapshot, heartbeat_s
        self.stopping = threading.Event()
        self.watcher = RolloutWatcher(studio, name, tools, on_tools, on_recipe, poll_s=poll_s)
        self._beater = threading.Thread(target=self._beats, name="fleet-heartbeat", daemon=True)
        self.last_error: str | None = None

    def beat_once(self) -> None:
        beat(self.studio, self.snapshot())

    def _beats(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self.beat_once()
                self.last_error = None
            except Exception as error:  # noqa: BLE001 - the database may be away: say so, beat again
                self.last_error = str(error)
                log.warning("station %s heartbeat: %s", self.name, error)
            if self.stopping.wait(max(0.0, self.heartbeat_s - (time.monotonic() - started))):
                return

    def start(self) -> None:
        self._beater.start()
        self.watcher.start()

    def stop(self) -> None:
        self.stopping.set()
        self.watcher.stop()
