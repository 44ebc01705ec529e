"""The headless station service: frames in, verdicts out to PLC / MQTT / OPC UA / webhook.

Threads: the grabber (newest frame only), the inspector (one queue of triggers and recipe changes,
so a changeover never runs beside an inspection), one delivery worker per output, the Modbus and
OPC UA servers (own event loops), a small REST server on loopback, and a heartbeat that writes the
station's status to the database every second (the Line page reads it) and follows recipe changes
made in the studio. While the database is unreachable the station keeps inspecting: the PLC gets
its verdicts and the inspections wait in a local spool (``core.line.db_spool``), written in order,
exactly once, when the database answers again.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select

from core.audit import Actor
from core.audit import log as audit_log
from core.auth.roles import Role
from core.errors import DatabaseUnavailableError, NotFoundError, StudioError
from core.fleet.agent import FleetAgent
from core.fleet.heartbeat import Beat, store_problem
from core.line import recipes as recipe_service
from core.line.db_spool import DatabaseSpool
from core.line.handshake import ErrorCode, Handshake
from core.line.judge import ToolSetup, class_index, fast_png, judge, load_tool
from core.line.mqtt import MqttLink
from core.line.outbox import DeliveryWorker, Outbox, backlog, ensure_station, prune
from core.line.outputs import make_sender, output_config
from core.line.overview import station_rows  # noqa: F401  (re-exported for the CLI and tests)
from core.line.sources import FrameGrabber
from core.live.triggers import PartTrigger, thumbnail
from core.studio import Studio
from storage.line_tables import Output
from storage.tables import utc_now

log = logging.getLogger("studio.line.station")
TRIGGER_MODES = ("plc", "continuous", "part-present")
DECISION_RANK = {"pass": 0, "review": 1, "fail": 2}
SPOOL_FOLDER = "station-spool"  # <data>/station-spool/<station>: inspections waiting for the database


def station_actor(name: str) -> Actor:
    """The principal a headless station acts as: operator rights, via "station"."""
    import socket

    return Actor(f"station {name}"[:100], socket.gethostname(), Role.OPERATOR, "station")


@dataclass
class StationOptions:
    name: str
    source: str
    tool: str | None = None
    recipe: str | None = None
    modbus_port: int | None = None
    opcua_port: int | None = None
    http_port: int = 0
    bind: str = "0.0.0.0"
    trigger: str = "plc"  # plc: PLC / MQTT / REST triggers only; continuous / part-present: also from frames
    fps: float = 10.0
    max_frame_age_s: float = 5.0
    heartbeat_s: float = 1.0


@dataclass
class Request:
    kind: str  # trigger | recipe | stop
    source: str
    key: str | int | None = None
    audited: bool = False
    at: float = field(default_factory=time.monotonic)


class Station:
    """One running station. ``start()`` then ``wait()``; ``stop()`` from any thread."""

    def __init__(self, studio: Studio, options: StationOptions) -> None:
        self.studio, self.options, self.name = studio, options, options.name
        self.handshake = Handshake(self._on_trigger, self._on_recipe_request)
        self.outbox = Outbox(options.name)
        studio.recorder.subscribe(in_transaction=self.outbox.in_transaction, after_commit=self.outbox.after_commit)
        studio.recorder.encode_image = fast_png  # kept crops are written before the PLC's result
        self.spool = DatabaseSpool(studio, studio.settings.data_dir / SPOOL_FOLDER / options.name,
                                   on_written=lambda recorded: self.outbox.seq_of(recorded.inspection_id))
        self.seq = 0  # the last result's sequence number (a spooled one's is provisional until written)
        self.grabber = FrameGrabber(options.source, fps=options.fps)
        self.requests: queue.Queue[Request] = queue.Queue()
        self.stopping = threading.Event()
        self.tools: list[ToolSetup] = []
        self.recipe: recipe_service.RecipeInfo | None = None
        self._recipe_cache: dict[int, list[ToolSetup]] = {}
        self.workers: dict[int, DeliveryWorker] = {}
        self.links: dict[int, MqttLink] = {}
        self.errors: deque[dict[str, str]] = deque(maxlen=20)
        self.inspections = 0
        self.last_result: dict[str, Any] | None = None
        self.modbus: Any = None
        self.opcua: Any = None
        self.http: ThreadingHTTPServer | None = None
        self.started_at = utc_now()
        self._camera_up: bool | None = None
        self._threads: list[threading.Thread] = []
        self._tools_lock = threading.Lock()  # a rollout swaps tools in while the recipe stays the same
        self.rollout_problem: str | None = None  # the last rollout that could not load (kept the old models)
        self._failed_loads: dict[str, str] = {}  # tool -> why its new models did not load (audited once)
        self._fps_mark = (time.monotonic(), 0)
        self.fleet = FleetAgent(studio, self.name, self.fleet_beat, lambda: [t.name for t in self.tools],
                                self.reload_tools, self._recipe_switched, heartbeat_s=options.heartbeat_s)

    # --- reporting ----------------------------------------------------------------------------
    def report(self, message: str, code: ErrorCode | None = None, result_ready: bool = False) -> None:
        """An error for the log, the page and (with ``code``) the PLC's Error bit."""
        log.error("station %s: %s", self.name, message)
        self.errors.append({"at": utc_now().isoformat(timespec="seconds") + "Z", "message": message})
        if code is not None:
            self.handshake.error(code, message, result_ready=result_ready)

    # --- callbacks from protocols (must not block) --------------------------------------------
    def _on_trigger(self, source: str) -> None:
        self.requests.put(Request("trigger", source))

    def _on_recipe_request(self, number: int, source: str) -> None:
        self.requests.put(Request("recipe", source, number))

    def trigger(self, source: str) -> bool:
        return self.handshake.trigger(source)

    def change_recipe(self, key: str | int, source: str) -> None:
        self.requests.put(Request("recipe", source, key))

    def on_mqtt_command(self, payload: bytes) -> None:
        try:
            command = json.loads(payload.decode("utf-8"))
            if not isinstance(command, dict) or command.get("cmd") not in ("trigger", "recipe"):
                raise ValueError('expected {"cmd": "trigger"} or {"cmd": "recipe", "recipe": NAME or NUMBER}')
            if command["cmd"] == "trigger":
                self.trigger("mqtt")
            else:
                key = command.get("recipe")
                if not isinstance(key, (str, int)) or isinstance(key, bool) or key == "":
                    raise ValueError('a recipe command needs "recipe": NAME or NUMBER')
                self.change_recipe(key, "mqtt")
        except (ValueError, UnicodeDecodeError) as error:
            self.report(f"malformed MQTT command {payload[:200]!r}: {error}", ErrorCode.BAD_COMMAND)

    # --- the inspector ------------------------------------------------------------------------
    def _inspector(self) -> None:
        while True:
            request = self.requests.get()
            if request.kind == "stop":
                return
            try:
                if request.kind == "trigger":
                    self._inspect(request)
                else:
                    self._apply_recipe(request)
            except DatabaseUnavailableError as error:
                what = "inspection" if request.kind == "trigger" else "recipe change"
                self.report(
                    f"{what} from {request.source} not done: {error}",
                    ErrorCode.DATABASE,
                    result_ready=request.kind == "trigger",
                )
            except Exception as error:  # never leave Busy set, never die
                self.report(f"unexpected error: {error}", ErrorCode.MODEL_FAILURE, result_ready=True)
                log.exception("inspector")

    def _inspect(self, request: Request) -> None:
        frame = self.grabber.latest()
        if frame is None or not self.grabber.connected or time.monotonic() - frame.at > self.options.max_frame_age_s:
            why = self.grabber.error or "no frame from the source yet"
            self.report(f"trigger from {request.source}: no frame ({why})", ErrorCode.NO_FRAME, result_ready=True)
            return
        if not self.tools:
            self.report(
                f"trigger from {request.source}: no recipe or tool loaded", ErrorCode.NOT_READY, result_ready=True
            )
            return
        tools = list(self.tools)
        try:
            judged = judge(self.studio, self.name, self.recipe.name if self.recipe else None, tools, frame.rgb)
        except StudioError as error:
            self.report(f"model failure: {error}", ErrorCode.MODEL_FAILURE, result_ready=True)
            return
        for recorded in self.spool.record(judged):  # spooled (None) while the database is away
            self.seq = (self.outbox.seq_of(recorded.inspection_id) or self.seq) if recorded else self.seq + 1
        worst = max(judged, key=lambda r: DECISION_RANK.get(r.decision, 0))
        tool = next(t for t in tools if t.name == worst.tool)
        self.inspections += len(judged)
        self.handshake.complete(self.seq, worst.decision, class_index(tool, worst.label), worst.score)
        self.last_result = {
            "seq": self.seq,
            "decision": worst.decision,
            "label": worst.label,
            "score": round(worst.score, 4),
            "tool": worst.tool,
            "source": request.source,
            "ms": round((time.monotonic() - request.at) * 1000, 1),
        }

    def _apply_recipe(self, request: Request) -> None:
        """Switch to the requested recipe (DatabaseUnavailableError propagates: the caller reports it)."""
        try:
            recipe = recipe_service.find_recipe(self.studio, self.name, request.key if request.key is not None else "")
        except NotFoundError as error:
            self.report(f"recipe change from {request.source}: {error}", ErrorCode.UNKNOWN_RECIPE)
            return
        try:
            tools = self._recipe_cache.get(recipe.id) or [load_tool(self.studio, entry) for entry in recipe.tools]
        except StudioError as error:
            self.report(f"recipe {recipe.name!r} cannot load its models: {error}", ErrorCode.MODEL_FAILURE)
            return
        self._recipe_cache[recipe.id] = tools
        if not request.audited:
            recipe_service.activate_recipe(self.studio, self.name, recipe.name, station_actor(self.name),
                                           via=request.source)
        with self._tools_lock:
            self.tools, self.recipe = tools, recipe
        self.handshake.set_recipe(recipe.number)
        self._update_ready()
        log.info("station %s: recipe %s (%d) active (from %s)", self.name, recipe.name, recipe.number, request.source)

    def _update_ready(self) -> None:
        self.handshake.set_ready(bool(self.tools) and self.grabber.connected)

    # --- fleet: heartbeat and rollouts ----------------------------------------------------------
    def _entries(self) -> list[dict[str, Any]]:
        return list(self.recipe.tools) if self.recipe else [{"tool": t.name} for t in self.tools]

    def reload_tools(self, changed: list[str]) -> list[str]:
        """A rollout: load the changed tools' active models (in the caller's thread, beside inspection)
        and swap them in; a tool whose new models do not load keeps its old ones (degraded, audited once
        per problem) and is returned: the rollout watcher tries it again with backoff."""
        recipe, entries = self.recipe, self._entries()
        fresh: dict[str, ToolSetup] = {}
        failed: list[str] = []
        for entry in entries:
            if entry["tool"] not in changed:
                continue
            old = next((t for t in self.tools if t.name == entry["tool"]), None)
            try:
                setup = load_tool(self.studio, entry)
                problem = " ".join(setup.models.errors.values()) if setup.models.errors and not (
                    old and old.models.errors) else None
            except StudioError as error:
                setup, problem = None, str(error)
            if problem or setup is None:
                self._rollout_failed(entry["tool"], problem or "no model", old)
                failed.append(entry["tool"])
                continue
            fresh[setup.name] = setup
            self._failed_loads.pop(setup.name, None)
            self._audit_rollout(setup.tool_id, "rollout_loaded", tool=setup.name, versions=setup.models.version_ids)
        with self._tools_lock:
            if self.recipe is not recipe:  # the recipe changed meanwhile: its own load is newer
                return []
            self.tools = [fresh.get(t.name, t) for t in self.tools]
            if recipe is not None:
                self._recipe_cache[recipe.id] = self.tools
        if not failed:
            self.rollout_problem = None
        log.info("station %s: reloaded %s", self.name, ", ".join(fresh) or "nothing")
        return failed

    def _rollout_failed(self, tool: str, problem: str, old: ToolSetup | None) -> None:
        kept = old.models.version_ids if old else {}
        self.rollout_problem = f"tool {tool}: the new model does not load ({problem}); keeping {kept}; retrying"
        if self._failed_loads.get(tool) == problem:  # a retry that failed the same way: said already
            log.warning("station %s: %s", self.name, self.rollout_problem)
            return
        self._failed_loads[tool] = problem
        self.report(self.rollout_problem)
        self._audit_rollout(old.tool_id if old else None, "rollout_failed", tool=tool, error=problem[:500], kept=kept)

    def _audit_rollout(self, tool_id: int | None, action: str, **details: Any) -> None:
        try:
            with self.studio.transaction() as session:
                audit_log(session, Actor(name=f"station {self.name}", device=self.fleet_host), action,
                          f"station {self.name}", tool_id, station=self.name, **details)
        except StudioError as error:
            log.error("station %s: audit of %s not written: %s", self.name, action, error)

    @property
    def fleet_host(self) -> str:
        import socket

        return socket.gethostname()

    def _recipe_switched(self) -> None:
        self._write_status()

    def fleet_beat(self) -> Beat:
        """What the fleet sees of this station now (called by the heartbeat thread)."""
        now, count = time.monotonic(), self.inspections
        mark_at, mark_count = self._fps_mark
        self._fps_mark = (now, count)
        fps = (count - mark_count) / (now - mark_at) if now > mark_at else 0.0
        with self.studio.transaction() as session:
            pending = sum(backlog(session, output_id) for output_id in list(self.workers))
        pending += self.spool.pending()  # their events are not in the outbox yet
        tools = list(self.tools)
        problems = [self.rollout_problem] if self.rollout_problem else []
        problems += [e for t in tools for e in t.models.errors.values()]
        if spooled := store_problem(self.studio):
            problems.append(spooled)
        if waiting := self.spool.problem():
            problems.append(waiting)
        if not tools:
            problems.append("no recipe or tool loaded")
        if not self.grabber.connected:
            problems.append(f"camera: {self.grabber.error or 'not connected'}")
        return Beat(name=self.name, recipe=self.recipe.name if self.recipe else None,
                    models={t.name: t.models.version_ids for t in tools}, fps=round(fps, 2), backlog=pending,
                    state="degraded" if problems else "ok", reason="; ".join(problems) or None,
                    heartbeat_s=self.options.heartbeat_s, host=self.fleet_host)

    # --- frame-driven triggers ----------------------------------------------------------------
    def _frame_trigger(self) -> None:
        part = PartTrigger()
        last = 0
        while not self.stopping.is_set():
            with self.grabber.new_frame:
                self.grabber.new_frame.wait(1.0)
            frame = self.grabber.latest()
            if frame is None or frame.number == last:
                continue
            last = frame.number
            part.observe(thumbnail(frame.rgb))
            busy = self.handshake.signals().bit("Busy") or not self.requests.empty()
            if not busy and part.should_record(self.options.trigger, True, False):
                self.handshake.trigger(self.options.trigger)

    # --- outputs ------------------------------------------------------------------------------
    def _sync_outputs(self) -> None:
        with self.studio.transaction() as session:
            wanted = set(
                session.scalars(select(Output.id).where(Output.station == self.name, Output.enabled.is_(True)))
            )
        for output_id in set(self.workers) - wanted:
            self.workers.pop(output_id).stop()
            link = self.links.pop(output_id, None)
            if link:
                link.stop()
        for output_id in wanted - set(self.workers):
            row = output_config(self.studio, output_id)
            worker: DeliveryWorker
            if row.kind == "mqtt":
                link = make_sender(row, on_command=self.on_mqtt_command)  # type: ignore[assignment]
                assert isinstance(link, MqttLink)
                worker = DeliveryWorker(self.studio, row.id, row.name, link)
                link.on_connected = worker.wake.set
                self.links[row.id] = link
                link.start()
            else:
                worker = DeliveryWorker(self.studio, row.id, row.name, make_sender(row))
            self.outbox.register(worker.wake)
            self.workers[row.id] = worker
            worker.start()

    def outputs_status(self) -> dict[str, Any]:
        status = {}
        for output_id, worker in self.workers.items():
            sender: Any = worker.sender
            status[worker.output_name] = {
                "id": output_id,
                "state": getattr(sender, "state", "?"),
                "error": getattr(sender, "error", None) or worker.last_error,
                "delivered": worker.delivered,
            }
        return status

    # --- heartbeat ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "started_at": self.started_at.isoformat(timespec="seconds") + "Z",
            "source": {
                "source": self.options.source,
                "kind": self.grabber.kind,
                "connected": self.grabber.connected,
                "error": self.grabber.error,
                "frames": self.grabber.frames,
            },
            "trigger": self.options.trigger,
            "http": f"127.0.0.1:{self.http.server_address[1]}" if self.http else None,
            "modbus": None
            if self.modbus is None
            else {"port": self.modbus.port, "state": self.modbus.state, "error": self.modbus.error},
            "opcua": None
            if self.opcua is None
            else {"endpoint": self.opcua.endpoint, "state": self.opcua.state, "error": self.opcua.error},
            "outputs": self.outputs_status(),
            "recipe": self.recipe.as_dict() if self.recipe else None,
            "tools": [t.name for t in self.tools],
            "signals": self.handshake.signals().as_dict(),
            "errors": list(self.errors),
            "inspections": self.inspections,
            "last_result": self.last_result,
            "spooled": self.spool.pending(),
            "database_error": self.spool.last_error if self.spool.pending() else None,
        }

    def _heartbeat(self) -> None:
        beats = 0
        while not self.stopping.wait(self.options.heartbeat_s):
            beats += 1
            try:
                if self._camera_up is not self.grabber.connected:
                    if self._camera_up and not self.grabber.connected:
                        self.report(f"camera lost: {self.grabber.error}", ErrorCode.NO_FRAME)
                    self._camera_up = self.grabber.connected
                    self._update_ready()
                self._write_status()
                if beats % 5 == 0:
                    self._sync_outputs()
                if beats % 3600 == 1:  # about hourly: events every output has received, after 30 days
                    with self.studio.transaction() as session:
                        prune(session)
            except StudioError as error:
                log.error("station %s heartbeat: %s", self.name, error)

    def _write_status(self) -> None:
        with self.studio.transaction() as session:
            row = ensure_station(session, self.name)
            row.status, row.heartbeat_at = self.status(), utc_now()
            active = row.active_recipe_id
        if self.recipe and active and active != self.recipe.id:  # changed in the studio or the CLI
            self.requests.put(Request("recipe", "studio", str(active_name(self.studio, active)), audited=True))

    # --- REST (loopback) ----------------------------------------------------------------------
    def _start_http(self) -> None:
        station = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/status":
                    self._reply(200, station.status())
                else:
                    self._reply(404, {"error": "GET /status"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                if self.path == "/trigger":
                    accepted = station.trigger("rest")
                    self._reply(
                        200 if accepted else 409,
                        {"accepted": accepted, "signals": station.handshake.signals().as_dict()},
                    )
                elif self.path == "/recipe":
                    try:
                        key = json.loads(raw or b"{}").get("recipe")
                    except (ValueError, AttributeError):
                        key = None
                    if key is None:
                        self._reply(400, {"error": 'POST /recipe {"recipe": NAME or NUMBER}'})
                    else:
                        station.change_recipe(key, "rest")
                        self._reply(202, {"requested": key})
                else:
                    self._reply(404, {"error": "POST /trigger or /recipe"})

        self.http = ThreadingHTTPServer(("127.0.0.1", self.options.http_port), Handler)
        self._spawn(self.http.serve_forever, "rest")

    # --- life cycle ---------------------------------------------------------------------------
    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _retry(self, action: Any, what: str, seconds: float = 60.0) -> Any:
        """Run ``action``; while the database is busy or away, say so and try again (start-up only)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return action()
            except DatabaseUnavailableError as error:
                if time.monotonic() > deadline:
                    raise
                self.report(f"{what}: {error}; retrying")
                time.sleep(1.0)

    def _ensure_row(self) -> None:
        with self.studio.transaction() as session:
            self.seq = ensure_station(session, self.name).seq + self.spool.pending()

    def start(self) -> None:
        self._retry(self._ensure_row, "registering the station")
        self.grabber.start()
        if self.options.recipe:
            startup = Request("recipe", "startup", self.options.recipe)
            self._retry(lambda: self._apply_recipe(startup), "activating the recipe")
            if self.recipe is None:
                why = self.errors[-1]["message"]
                raise StudioError(f"station {self.name!r}: recipe {self.options.recipe!r} cannot be used ({why})")
        elif self.options.tool:
            self.tools = [self._retry(lambda: load_tool(self.studio, {"tool": self.options.tool}), "loading the tool")]
        self.spool.start()  # replays what an earlier run spooled (before any new inspection is recorded)
        self._spawn(self._inspector, "inspector")
        if self.options.modbus_port is not None:
            from core.line.modbus import ModbusStation

            self.modbus = ModbusStation(self.handshake, self.options.bind, self.options.modbus_port)
            self.modbus.start()
            if self.modbus.error:
                self.report(self.modbus.error)
        if self.options.opcua_port is not None:
            from core.line.opcua import OpcUaStation

            self.opcua = OpcUaStation(self.handshake, self.name, self.options.bind, self.options.opcua_port)
            self.opcua.start()
            if self.opcua.error:
                self.report(self.opcua.error)
        self._start_http()
        self._retry(self._sync_outputs, "reading the outputs")
        if self.options.trigger in ("continuous", "part-present"):
            self._spawn(self._frame_trigger, "frame-trigger")
        deadline = time.monotonic() + 5
        while not self.grabber.connected and not self.grabber.error and time.monotonic() < deadline:
            time.sleep(0.02)
        self._camera_up = self.grabber.connected
        if not self.grabber.connected:
            self.report(f"source not available yet: {self.grabber.error or 'no frame'}; retrying", ErrorCode.NO_FRAME)
        self._update_ready()
        self._retry(self._write_status, "writing the status")
        self._spawn(self._heartbeat, "heartbeat")
        self.fleet.start()
        log.info("station %s running (source %s)", self.name, self.options.source)

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.fleet.stop()
        self.requests.put(Request("stop", "stop"))
        self.grabber.stop()
        self.spool.stop()  # a replay stopped midway resumes at the next start (nothing is lost)
        self.outbox.closed = True
        for worker in self.workers.values():
            worker.stop()
        for link in self.links.values():
            link.stop()
        if self.modbus:
            self.modbus.stop()
        if self.opcua:
            self.opcua.stop()
        if self.http:
            self.http.shutdown()
        try:
            with self.studio.transaction() as session:
                row = ensure_station(session, self.name)
                row.status = {**(row.status or {}), "stopped_at": utc_now().isoformat(timespec="seconds") + "Z"}
        except StudioError:
            pass

    def wait(self) -> None:
        """Block until SIGINT / SIGTERM (or ``stop()``), then stop."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
            signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        while not self.stopping.wait(0.5):
            pass
        self.stopping.clear()
        self.stop()


def active_name(studio: Studio, recipe_id: int) -> str:
    from storage.line_tables import Recipe

    with studio.transaction() as session:
        row = session.get(Recipe, recipe_id)
        return row.name if row else ""
