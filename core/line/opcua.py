"""The PLC handshake as an OPC UA server (asyncua): the same signals and semantics as Modbus.

Node tree: ``Objects/<station>`` (namespace ``urn:inspection-studio:line``) with writable
``Trigger``, ``Ack`` (Boolean) and ``RequestedRecipe`` (UInt16), and read-only ``Ready``, ``Busy``,
``ResultReady``, ``OK``, ``NG``, ``Review``, ``Error`` (Boolean), ``ResultSeq``, ``ClassIndex``,
``ScoreX1000``, ``ActiveRecipe``, ``ErrorCode`` (UInt16). No security policy is set (like a plain
Modbus port): on an untrusted network add one with ``server.set_security_policy`` and certificates.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType

from core.line.handshake import (
    COILS,
    DISCRETE_INPUTS,
    HOLDING_REGISTERS,
    INPUT_REGISTERS,
    Handshake,
    Signals,
)

log = logging.getLogger("studio.line.opcua")
NAMESPACE = "urn:inspection-studio:line"


class OpcUaStation:
    """An OPC UA server in its own thread and event loop, bound to one station's handshake."""

    def __init__(self, handshake: Handshake, station: str, host: str = "0.0.0.0", port: int = 4840) -> None:
        self.handshake, self.station, self.host, self.port = handshake, station, host, port
        self.endpoint = f"opc.tcp://{host}:{port}/studio/"
        self.error: str | None = None
        self.nodes: dict[str, Any] = {}
        self._writable: dict[Any, str] = {}
        self._levels = {"Trigger": False, "Ack": False}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opcua", daemon=True)

    @property
    def state(self) -> str:
        return "error" if self.error else ("listening" if self._started.is_set() else "starting")

    async def _build(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"Inspection studio station {self.station}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE)
        obj = await server.nodes.objects.add_object(idx, self.station)
        for name in COILS:
            self.nodes[name] = await obj.add_variable(idx, name, False, ua.VariantType.Boolean)
        for name in HOLDING_REGISTERS:
            self.nodes[name] = await obj.add_variable(idx, name, 0, ua.VariantType.UInt16)
        for name in (*COILS, *HOLDING_REGISTERS):
            await self.nodes[name].set_writable()
            self._writable[self.nodes[name].nodeid] = name
        for name in DISCRETE_INPUTS:
            self.nodes[name] = await obj.add_variable(idx, name, False, ua.VariantType.Boolean)
        for name in INPUT_REGISTERS:
            self.nodes[name] = await obj.add_variable(idx, name, 0, ua.VariantType.UInt16)
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        self._server = server

    async def _on_write(self, event: Any, dispatcher: Any) -> None:
        """A client wrote values: hand the PLC's signals to the handshake."""
        results = event.response_params or []
        for write, status in zip(event.request_params.NodesToWrite, results, strict=False):
            name = self._writable.get(write.NodeId)
            if name is None or not status.is_good():
                continue
            value = write.Value.Value.Value
            if name == "RequestedRecipe":
                self.handshake.write_recipe_request(int(value), source="opcua")
            else:
                self._levels[name] = bool(value)
                self.handshake.write_coils(**{name.lower(): bool(value)}, source="opcua")

    async def _push(self, signals: Signals) -> None:
        assert self._server is not None
        for name, value in zip(DISCRETE_INPUTS, signals.bits, strict=True):
            await self._server.write_attribute_value(
                self.nodes[name].nodeid, ua.DataValue(ua.Variant(value, ua.VariantType.Boolean))
            )
        for name, value in zip(INPUT_REGISTERS, signals.registers, strict=True):
            await self._server.write_attribute_value(
                self.nodes[name].nodeid, ua.DataValue(ua.Variant(value, ua.VariantType.UInt16))
            )

    def _on_signals(self, signals: Signals) -> None:
        if self._loop is not None and self._started.is_set():
            asyncio.run_coroutine_threadsafe(self._push(signals), self._loop)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self._build()
        assert self._server is not None
        async with self._server:
            await self._push(self.handshake.signals())
            self._started.set()
            await self._stop.wait()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except Exception as error:
            self.error = f"OPC UA server on {self.endpoint} failed: {error}"
            log.error(self.error)
            self._started.set()

    def start(self) -> None:
        self.handshake.listeners.append(self._on_signals)
        self._thread.start()
        self._started.wait(20)

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
