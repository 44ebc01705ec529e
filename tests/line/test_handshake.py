"""The protocol-independent PLC handshake: edges, results, errors, never a stuck Busy."""

from __future__ import annotations

from core.line.handshake import ErrorCode, Handshake, register_map


def make() -> tuple[Handshake, list[str], list[tuple[int, str]]]:
    triggers: list[str] = []
    recipes: list[tuple[int, str]] = []
    handshake = Handshake(triggers.append, lambda n, s: recipes.append((n, s)))
    handshake.set_ready(True)
    return handshake, triggers, recipes


def test_trigger_result_ack_cycle() -> None:
    h, triggers, _ = make()
    h.write_coils(trigger=True)
    assert triggers == ["plc"] and h.signals().bit("Busy") and not h.signals().bit("ResultReady")
    h.write_coils(trigger=True)  # a level, not an edge: nothing new
    assert triggers == ["plc"]
    h.complete(seq=70000, decision="fail", class_index=1, score=0.8312)
    s = h.signals()
    assert (s.bit("Busy"), s.bit("ResultReady"), s.bit("OK"), s.bit("NG"), s.bit("Review")) == (
        False,
        True,
        False,
        True,
        False,
    )
    assert (s.register("ResultSeq"), s.register("ClassIndex"), s.register("ScoreX1000")) == (70000 % 65536, 1, 831)
    h.write_coils(ack=True)
    assert not h.signals().bit("ResultReady") and h.signals().bit("NG")  # results stay readable
    h.write_coils(trigger=False, ack=False)
    h.write_coils(trigger=True)
    assert triggers == ["plc", "plc"] and not h.signals().bit("NG")


def test_trigger_while_busy_is_an_error_and_the_running_inspection_goes_on() -> None:
    h, triggers, _ = make()
    h.write_coils(trigger=True)
    h.write_coils(trigger=False)
    h.write_coils(trigger=True)
    assert triggers == ["plc"]
    s = h.signals()
    assert s.bit("Busy") and s.bit("Error") and s.register("ErrorCode") == ErrorCode.TRIGGER_WHILE_BUSY
    h.complete(1, "pass", 0, 0.1)
    assert not h.signals().bit("Busy") and h.signals().bit("OK")


def test_failure_ends_busy_with_error_and_result_ready_until_ack() -> None:
    h, _, _ = make()
    h.trigger("rest")
    h.error(ErrorCode.NO_FRAME, "camera gone", result_ready=True)
    s = h.signals()
    assert not s.bit("Busy") and s.bit("ResultReady") and s.bit("Error") and s.register("ErrorCode") == 3
    assert not (s.bit("OK") or s.bit("NG"))
    h.write_coils(ack=True)
    s = h.signals()
    assert not s.bit("Error") and not s.bit("ResultReady") and s.register("ErrorCode") == 0


def test_recipe_request_only_on_a_new_non_zero_value() -> None:
    h, _, recipes = make()
    h.write_recipe_request(3)
    h.write_recipe_request(3)
    h.write_recipe_request(0)
    h.write_recipe_request(4, source="opcua")
    assert recipes == [(3, "plc"), (4, "opcua")]


def test_listeners_see_every_change_and_the_map_lists_every_signal() -> None:
    h, _, _ = make()
    seen = []
    h.listeners.append(seen.append)
    h.trigger("mqtt")
    assert seen and seen[-1].bit("Busy")
    table = register_map()
    names = [row["name"] for rows in table.values() for row in rows]
    assert names == [
        "Trigger",
        "Ack",
        "Ready",
        "Busy",
        "ResultReady",
        "OK",
        "NG",
        "Review",
        "Error",
        "ResultSeq",
        "ClassIndex",
        "ScoreX1000",
        "ActiveRecipe",
        "ErrorCode",
        "RequestedRecipe",
    ]
