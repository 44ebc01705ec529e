"""The PLC handshake, independent of the protocol (Modbus TCP and OPC UA both drive it).

Map (documented in the README, printed by ``python -m core station map``):

- written by the PLC: coil 0 Trigger, coil 1 Ack; holding register 0 requested recipe number;
- read by the PLC: discrete inputs 0 Ready, 1 Busy, 2 ResultReady, 3 OK, 4 NG, 5 Review, 6 Error;
  input registers 0 result sequence number, 1 class index, 2 score x 1000, 3 active recipe number,
  4 error code.

Trigger rising edge -> Busy -> inspect -> results + ResultReady -> PLC sets Ack -> ResultReady (and
Error) clear; the PLC then clears Ack. Trigger while Busy, unknown recipe, no frame, model failure:
Error + error code (an inspection that cannot run also raises ResultReady, so a PLC waiting for it
never hangs); Busy never stays set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

COILS = ("Trigger", "Ack")
DISCRETE_INPUTS = ("Ready", "Busy", "ResultReady", "OK", "NG", "Review", "Error")
INPUT_REGISTERS = ("ResultSeq", "ClassIndex", "ScoreX1000", "ActiveRecipe", "ErrorCode")
HOLDING_REGISTERS = ("RequestedRecipe",)


class ErrorCode(IntEnum):
    NONE = 0
    TRIGGER_WHILE_BUSY = 1
    UNKNOWN_RECIPE = 2
    NO_FRAME = 3
    MODEL_FAILURE = 4
    DATABASE = 5
    BAD_COMMAND = 6
    NOT_READY = 7


ERROR_TEXT = {
    ErrorCode.NONE: "no error",
    ErrorCode.TRIGGER_WHILE_BUSY: "trigger while busy (ignored; the running inspection goes on)",
    ErrorCode.UNKNOWN_RECIPE: "unknown recipe number (the active recipe stays)",
    ErrorCode.NO_FRAME: "no frame from the camera",
    ErrorCode.MODEL_FAILURE: "the model could not judge the frame",
    ErrorCode.DATABASE: "the inspection could not be recorded",
    ErrorCode.BAD_COMMAND: "malformed command",
    ErrorCode.NOT_READY: "station not ready (no recipe or model loaded)",
}


def register_map() -> dict[str, list[dict[str, object]]]:
    """The Modbus map as data (the CLI prints it, the page shows it)."""
    described = {
        "Trigger": "rising edge starts an inspection",
        "Ack": "PLC has read the result: clears ResultReady and Error",
        "Ready": "station can take a trigger",
        "Busy": "inspecting",
        "ResultReady": "results are valid",
        "OK": "part passed",
        "NG": "part failed",
        "Review": "a person should look",
        "Error": "see ErrorCode",
        "ResultSeq": "event sequence number (mod 65536)",
        "ClassIndex": "index of the label in the tool's classes",
        "ScoreX1000": "defect score x 1000",
        "ActiveRecipe": "number of the active recipe",
        "ErrorCode": ", ".join(f"{c.value} {ERROR_TEXT[c]}" for c in ErrorCode),
        "RequestedRecipe": "PLC writes a recipe number to switch products (0: no request)",
    }
    table = {
        "coils (PLC writes)": COILS,
        "discrete inputs (PLC reads)": DISCRETE_INPUTS,
        "input registers (PLC reads)": INPUT_REGISTERS,
        "holding registers (PLC writes)": HOLDING_REGISTERS,
    }
    return {
        kind: [{"address": i, "name": n, "meaning": described[n]} for i, n in enumerate(names)]
        for kind, names in table.items()
    }


@dataclass(frozen=True)
class Signals:
    """A consistent snapshot of what the PLC reads."""

    bits: tuple[bool, ...]  # DISCRETE_INPUTS order
    registers: tuple[int, ...]  # INPUT_REGISTERS order

    def bit(self, name: str) -> bool:
        return self.bits[DISCRETE_INPUTS.index(name)]

    def register(self, name: str) -> int:
        return self.registers[INPUT_REGISTERS.index(name)]

    def as_dict(self) -> dict[str, int | bool]:
        return {
            **dict(zip(DISCRETE_INPUTS, self.bits, strict=True)),
            **dict(zip(INPUT_REGISTERS, self.registers, strict=True)),
        }


class Handshake:
    """Thread-safe state of one station's PLC signals.

    ``on_trigger`` and ``on_recipe`` are called (outside the lock) on an accepted trigger edge and on a
    new recipe request; they must not block. Listeners get every new ``Signals``.
    """

    def __init__(self, on_trigger: Callable[[str], None], on_recipe: Callable[[int, str], None]) -> None:
        self._lock = threading.Lock()
        self._on_trigger, self._on_recipe = on_trigger, on_recipe
        self._bits = dict.fromkeys(DISCRETE_INPUTS, False)
        self._regs = dict.fromkeys(INPUT_REGISTERS, 0)
        self._coils = dict.fromkeys(COILS, False)
        self._requested = 0
        self.listeners: list[Callable[[Signals], None]] = []
        self.last_error: str | None = None

    def signals(self) -> Signals:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> Signals:
        return Signals(tuple(self._bits[n] for n in DISCRETE_INPUTS), tuple(self._regs[n] for n in INPUT_REGISTERS))

    def _changed(self) -> None:
        snap = self.signals()
        for listener in list(self.listeners):
            listener(snap)

    # --- what the PLC writes -----------------------------------------------------------------
    def write_coils(self, trigger: bool | None = None, ack: bool | None = None, source: str = "plc") -> None:
        """New coil levels from the PLC (None: unchanged); acts on rising edges."""
        fire = False
        with self._lock:
            if ack is not None:
                if ack and not self._coils["Ack"]:
                    self._bits["ResultReady"] = False
                    self._bits["Error"] = False
                    self._regs["ErrorCode"] = 0
                self._coils["Ack"] = ack
            if trigger is not None:
                if trigger and not self._coils["Trigger"]:
                    fire = self._accept_trigger_locked()
                self._coils["Trigger"] = trigger
        self._changed()
        if fire:
            self._on_trigger(source)

    def trigger(self, source: str) -> bool:
        """A software trigger (MQTT, REST, CLI, the page): same rules as a PLC edge."""
        with self._lock:
            fire = self._accept_trigger_locked()
        self._changed()
        if fire:
            self._on_trigger(source)
        return fire

    def _accept_trigger_locked(self) -> bool:
        if self._bits["Busy"]:
            self._error_locked(ErrorCode.TRIGGER_WHILE_BUSY)
            return False
        self._bits.update(Busy=True, ResultReady=False, OK=False, NG=False, Review=False, Error=False)
        self._regs["ErrorCode"] = 0
        return True

    def write_recipe_request(self, number: int, source: str = "plc") -> None:
        """Holding register 0 written: a new non-zero value asks for a changeover."""
        with self._lock:
            changed = number != self._requested
            self._requested = number
        if changed and number:
            self._on_recipe(number, source)

    # --- what the station reports ------------------------------------------------------------
    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._bits["Ready"] = ready
        self._changed()

    def set_recipe(self, number: int) -> None:
        with self._lock:
            self._regs["ActiveRecipe"] = number
        self._changed()

    def complete(self, seq: int, decision: str, class_index: int, score: float) -> None:
        """An inspection finished and is recorded: results, then ResultReady, Busy off."""
        with self._lock:
            self._regs.update(
                ResultSeq=seq % 65536,
                ClassIndex=max(0, class_index) % 65536,
                ScoreX1000=max(0, min(65535, int(round(score * 1000)))),
            )
            self._bits.update(
                OK=decision == "pass", NG=decision == "fail", Review=decision == "review", Busy=False, ResultReady=True
            )
        self._changed()

    def error(self, code: ErrorCode, message: str | None = None, *, result_ready: bool = False) -> None:
        """Raise Error with a code; ends a running inspection (Busy off) when ``result_ready``."""
        with self._lock:
            self._error_locked(code, result_ready=result_ready)
            self.last_error = message or ERROR_TEXT[code]
        self._changed()

    def _error_locked(self, code: ErrorCode, result_ready: bool = False) -> None:
        self._bits["Error"] = True
        self._regs["ErrorCode"] = int(code)
        if result_ready:
            self._bits.update(Busy=False, ResultReady=True, OK=False, NG=False, Review=False)
