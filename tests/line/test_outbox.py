"""The durable outbox against a real Mosquitto broker and a real HTTP receiver."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from core.audit import SYSTEM
from core.inspect.recorder import RecordedInspection
from core.line.mqtt import MqttLink
from core.line.outbox import DeliveryWorker, Outbox, backlog
from core.line.outputs import (
    add_output,
    list_outputs,
    mask,
    publish_test,
    remove_output,
)
from core.line.webhook import WebhookSender, verify
from core.studio import Studio
from core.tools import create_tool
from storage import repository as repo
from storage.line_tables import OutboxDelivery, OutboxEvent
from tests.line.conftest import Mosquitto, Receiver, wait_until

pytestmark = pytest.mark.line


def record(studio: Studio, outbox: Outbox, n: int, station: str = "s1") -> list[int]:
    """``n`` inspections, each with its outbox rows in the same transaction (as the recorder does)."""
    ids = []
    for _ in range(n):
        with studio.transaction() as session:
            row = repo.add_inspection(
                session,
                tool_id=1,
                station=station,
                decision="fail",
                label="defective",
                score=0.9,
                latency_ms=5.0,
                opinions={"classifier": {"version": 1}},
            )
            recorded = RecordedInspection(
                row.id,
                "t",
                1,
                station,
                "r1",
                row.created_at,
                "fail",
                "defective",
                0.9,
                {"classifier": {"version": 1}},
                {"classifier": 1},
                False,
                None,
            )
            outbox.in_transaction(session, recorded)
            ids.append(row.id)
        outbox.after_commit(recorded)
    return ids


class Subscriber:
    """A plant-side MQTT client (persistent session, QoS 1) collecting events by id."""

    def __init__(self, broker: Mosquitto, topic: str = "studio/#") -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"plant-{broker.port}", clean_session=False
        )
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic, qos=1), self.ready.set())
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.ready.wait(15)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            payload = json.loads(message.payload)
        except ValueError:
            payload = {}  # e.g. a malformed command a test sends to the station
        with self.lock:
            self.messages.append((message.topic, payload if isinstance(payload, dict) else {}))

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m for t, m in self.messages if t.endswith("/inspection")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _backlog(studio: Studio, output_id: int) -> int:
    with studio.transaction() as session:
        return backlog(session, output_id)


def test_events_reach_the_broker_and_survive_a_broker_outage(studio: Studio, mosquitto: Mosquitto) -> None:
    create_tool(studio, "t", "good,defective", actor=SYSTEM)
    output = add_output(studio, "s1", "plant", "mqtt", mosquitto.url, actor=SYSTEM)
    plant = Subscriber(mosquitto)
    outbox = Outbox()
    link = MqttLink(mosquitto.url, "s1")
    worker = DeliveryWorker(studio, output.id, "plant", link, poll_s=0.2)
    link.on_connected = worker.wake.set
    outbox.register(worker.wake)
    link.start()
    worker.start()
    try:
        record(studio, outbox, 20)
        wait_until(lambda: len({e["event_id"] for e in plant.events()}) >= 20, what="20 events at the plant")
        wait_until(lambda: _backlog(studio, output.id) == 0, what="the broker's acknowledgements recorded")
        mosquitto.kill()  # kill -9: the broker is gone
        wait_until(lambda: not link.ready(), 15, what="the link to notice")
        record(studio, outbox, 30)  # recorded while the broker is down: kept in the outbox
        assert _backlog(studio, output.id) == 30
        mosquitto.start()
        wait_until(
            lambda: len({e["event_id"] for e in plant.events()}) >= 50, 60, what="all 50 events after the outage"
        )
        events = plant.events()
        assert sorted({e["seq"] for e in events}) == list(range(1, 51))
        first = events[0]
        assert first["version"] == 1 and first["station"] == "s1" and first["recipe"] == "r1" and first["tool"] == "t"
        assert set(first) >= {
            "event_id",
            "seq",
            "inspection_id",
            "decision",
            "label",
            "score",
            "opinions",
            "model_versions",
            "degraded",
            "time",
        }
        wait_until(lambda: _backlog(studio, output.id) == 0, what="every delivery marked")
    finally:
        worker.stop()
        link.stop()
        plant.close()


def _backlog(studio: Studio, output_id: int) -> int:
    with studio.transaction() as session:
        return backlog(session, output_id)


def test_status_is_retained_with_a_last_will(studio: Studio, mosquitto: Mosquitto) -> None:
    link = MqttLink(mosquitto.url, "s9")
    link.start()
    assert link.wait_connected(15)
    plant = Subscriber(mosquitto, "studio/s9/status")
    wait_until(lambda: any(m.get("state") == "online" for _, m in plant.messages), what="retained online status")
    link.client._sock.close() if link.client._sock else None  # the station dies without a goodbye
    link.client.loop_stop()
    wait_until(lambda: any(m.get("state") == "offline" for _, m in plant.messages), 40, what="the Last Will")
    plant.close()


def test_webhook_signed_retried_and_nothing_lost(studio: Studio, receiver: Receiver) -> None:
    create_tool(studio, "t", "good,defective", actor=SYSTEM)
    output = add_output(studio, "s1", "mes", "webhook", receiver.url, secret="k3y-very-secret", actor=SYSTEM)
    assert output.secret == "k3****" and "very" not in json.dumps(list_outputs(studio, "s1")[0].as_dict())
    receiver.fail_next = 2
    outbox = Outbox()
    worker = DeliveryWorker(studio, output.id, "mes", WebhookSender(receiver.url, "k3y-very-secret"), poll_s=0.2)
    outbox.register(worker.wake)
    worker.start()
    try:
        record(studio, outbox, 5)
        wait_until(lambda: len({e["event_id"] for e in receiver.events()}) == 5, 30, what="5 webhook events")
        for headers, body in receiver.posts:
            assert verify("k3y-very-secret", body, headers["x-studio-signature"])
            assert headers["x-studio-event-id"] == json.loads(body)["event_id"]
        assert not verify("wrong", receiver.posts[0][1], receiver.posts[0][0]["x-studio-signature"])
        wait_until(lambda: _backlog(studio, output.id) == 0, what="every delivery marked")
        with studio.transaction() as session:
            attempts = session.scalars(select(OutboxDelivery.attempts)).all()
        assert max(attempts) >= 2  # the first answers were 500: retried with back-off
    finally:
        worker.stop()


def test_outputs_config_and_test_publish(studio: Studio, mosquitto: Mosquitto, receiver: Receiver) -> None:
    add_output(studio, "s1", "plant", "mqtt", mosquitto.url, username="cam", secret="pa55word!", actor=SYSTEM)
    add_output(studio, "s1", "mes", "webhook", receiver.url, secret="abc", actor=SYSTEM)
    listed = {o.name: o for o in list_outputs(studio, "s1")}
    assert listed["plant"].secret == "pa****" and listed["mes"].secret == "****"
    assert publish_test(studio, "s1", "plant", actor=SYSTEM)["ok"]
    result = publish_test(studio, "s1", "mes", actor=SYSTEM)
    assert result["ok"] and receiver.events()[-1]["test"] is True
    remove_output(studio, "s1", "mes", actor=SYSTEM)
    assert [o.name for o in list_outputs(studio, "s1")] == ["plant"]
    with pytest.raises(Exception, match="mqtt://"):
        add_output(studio, "s1", "bad", "mqtt", "http://x", actor=SYSTEM)
    assert mask("") is None


def test_event_rows_commit_with_the_inspection_or_not_at_all(studio: Studio) -> None:
    create_tool(studio, "t", "good,defective", actor=SYSTEM)
    outbox = Outbox()
    with pytest.raises(RuntimeError):
        with studio.transaction() as session:
            row = repo.add_inspection(
                session, tool_id=1, station="s1", decision="pass", label="good", score=0.1, latency_ms=1.0
            )
            outbox.in_transaction(
                session,
                RecordedInspection(
                    row.id, "t", 1, "s1", None, row.created_at, "pass", "good", 0.1, {}, {}, False, None
                ),
            )
            raise RuntimeError("the inspection fails after the hook")
    with studio.transaction() as session:
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 0


def test_prune_keeps_what_an_output_still_waits_for(studio: Studio) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from core.line.outbox import prune
    from storage.tables import utc_now

    create_tool(studio, "t", "good,defective", actor=SYSTEM)
    output = add_output(studio, "s1", "mes", "webhook", "http://127.0.0.1:9/hook", actor=SYSTEM)
    record(studio, Outbox(), 4)
    with studio.transaction() as session:
        old = utc_now() - timedelta(days=31)
        session.execute(update(OutboxEvent).values(created_at=old))
        session.execute(update(OutboxDelivery).where(OutboxDelivery.event_pk <= 2).values(delivered_at=old))
        assert prune(session) == 2
    with studio.transaction() as session:
        assert sorted(session.scalars(select(OutboxEvent.seq))) == [3, 4]
        assert backlog(session, output.id) == 2
        assert prune(session) == 0
