"""The PLC handshake as a Modbus TCP server (pymodbus 3.16 ``SimDevice``; the map is in handshake.py).

The server's memory is only a mirror: an ``action`` hook, called by pymodbus before every access,
copies the handshake's signals into the discrete inputs and input registers before a read, and hands
the PLC's writes (coils, holding register 0) to the handshake.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from core.line.handshake import COILS, HOLDING_REGISTERS, INPUT_REGISTERS, Handshake

log = logging.getLogger("studio.line.modbus")
READ_COILS, READ_DISCRETE, READ_HOLDING, READ_INPUT = 1, 2, 3, 4
WRITE_COIL, WRITE_REGISTER, WRITE_COILS, WRITE_REGISTERS = 5, 6, 15, 16
SIZE = 16  # addresses 0..15 of each table are valid


def _bits(values: list[bool]) -> list[int]:
    return SimUtils.bitsToRegisters(list(values) + [False] * (SIZE - len(values)))


class ModbusStation:
    """A Modbus TCP server in its own thread and event loop, bound to one station's handshake."""

    def __init__(self, handshake: Handshake, host: str = "0.0.0.0", port: int = 5020) -> None:
        self.handshake, self.host, self.port = handshake, host, port
        self.coils = [False] * SIZE
        self.holding = [0] * SIZE
        self.clients = 0
        self.error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modbus", daemon=True)

    def device(self) -> SimDevice:
        blocks = (
            [SimData(0, count=SIZE, values=False, datatype=DataType.BITS)],
            [SimData(0, count=SIZE, values=False, datatype=DataType.BITS)],
            [SimData(0, count=SIZE, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=SIZE, values=0, datatype=DataType.REGISTERS)],
        )
        return SimDevice(0, simdata=blocks, action=self._action)

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Called by pymodbus before each access; ``registers`` is the table's memory (edited in place)."""
        if function_code == READ_DISCRETE:
            registers[0] = _bits(list(self.handshake.signals().bits))[0]
        elif function_code == READ_INPUT:
            registers[: len(INPUT_REGISTERS)] = list(self.handshake.signals().registers)
        elif function_code in (WRITE_COIL, WRITE_COILS) and values is not None:
            for offset, value in enumerate(values):
                if 0 <= address + offset < SIZE:
                    self.coils[address + offset] = bool(value)
            trigger, ack = self.coils[COILS.index("Trigger")], self.coils[COILS.index("Ack")]
            self.handshake.write_coils(trigger=trigger, ack=ack, source="modbus")
        elif function_code in (WRITE_REGISTER, WRITE_REGISTERS) and values is not None:
            for offset, value in enumerate(values):
                if 0 <= address + offset < SIZE:
                    self.holding[address + offset] = int(value)
            if address <= HOLDING_REGISTERS.index("RequestedRecipe") < address + len(values):
                self.handshake.write_recipe_request(self.holding[0], source="modbus")
        return None

    def _connected(self, up: bool) -> None:
        self.clients += 1 if up else -1

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as error:  # the port is taken, ...
            self.error = f"Modbus server on {self.host}:{self.port} failed: {error}"
            log.error(self.error)
            self._started.set()

    async def _serve(self) -> None:
        self._server = ModbusTcpServer(self.device(), address=(self.host, self.port), trace_connect=self._connected)
        await self._server.serve_forever(background=True)
        self._started.set()
        await self._server.serving

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def stop(self) -> None:
        if self._loop and self._server:
            future = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                future.result(5)
            except Exception:
                pass
        self._thread.join(5)

    @property
    def state(self) -> str:
        return "error" if self.error else (f"{self.clients} client(s)" if self.clients > 0 else "listening")
