"""MQTT output of a station (paho-mqtt 2.x): events at QoS 1, a retained status with a Last Will, and
the station's command topic.

Topics under the output URL's prefix (``mqtt://[user@]host:port/prefix``, default prefix ``studio``):
``PREFIX/STATION/TOOL/inspection`` (events), ``PREFIX/STATION/status`` (retained ``online`` /
``offline`` JSON; the broker publishes ``offline`` if the station dies) and ``PREFIX/STATION/cmd``
(commands: ``{"cmd": "trigger"}``, ``{"cmd": "recipe", "recipe": NAME or NUMBER}``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from core.errors import InvalidInputError
from core.line.events import encode, topic_name

log = logging.getLogger("studio.line.mqtt")
CONFIRM_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    prefix: str
    tls: bool = False


def parse_url(url: str) -> BrokerAddress:
    """``mqtt://host:port/prefix`` (or ``mqtts://``) as a broker address."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
        raise InvalidInputError(f"an MQTT output URL looks like mqtt://host:1883/prefix, not {url!r}")
    tls = parsed.scheme == "mqtts"
    prefix = parsed.path.strip("/") or "studio"
    return BrokerAddress(parsed.hostname, parsed.port or (8883 if tls else 1883), prefix, tls)


def topics(address: BrokerAddress, station: str) -> dict[str, str]:
    base = f"{address.prefix}/{topic_name(station)}"
    return {"status": f"{base}/status", "cmd": f"{base}/cmd", "events": f"{base}/+/inspection"}


def event_topic(address: BrokerAddress, station: str, tool: str) -> str:
    return f"{address.prefix}/{topic_name(station)}/{topic_name(tool)}/inspection"


class MqttLink:
    """One connection to a broker for a station: sends events, keeps the status, hears commands."""

    def __init__(
        self,
        url: str,
        station: str,
        username: str | None = None,
        password: str | None = None,
        on_command: Callable[[bytes], None] | None = None,
        on_connected: Callable[[], None] | None = None,
        client_id: str | None = None,
    ) -> None:
        self.address = parse_url(url)
        self.station = station
        self.topics = topics(self.address, station)
        self.on_command = on_command
        self.on_connected = on_connected
        self.state = "connecting"
        self.error: str | None = None
        self._connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"studio-{station}-{id(self):x}",
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        if self.address.tls:
            self.client.tls_set()
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.will_set(
            self.topics["status"], json.dumps({"state": "offline", "station": station}), qos=1, retain=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.client.connect_async(self.address.host, self.address.port, keepalive=10)
        self.client.loop_start()

    def stop(self) -> None:
        if self._connected.is_set():
            info = self.client.publish(
                self.topics["status"], json.dumps({"state": "offline", "station": self.station}), qos=1, retain=True
            )
            info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.state, self.error = "error", f"broker refused the connection: {reason}"
            log.error("MQTT %s:%s: %s", self.address.host, self.address.port, self.error)
            return
        self.state, self.error = "connected", None
        client.publish(
            self.topics["status"], json.dumps({"state": "online", "station": self.station}), qos=1, retain=True
        )
        client.subscribe(self.topics["cmd"], qos=1)
        self._connected.set()
        log.info("MQTT connected to %s:%s", self.address.host, self.address.port)
        if self.on_connected:
            self.on_connected()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()
        if self.state != "error" or not self.error or "refused" not in self.error:
            self.state, self.error = "disconnected", f"connection lost: {reason}"
        log.warning("MQTT %s:%s disconnected: %s", self.address.host, self.address.port, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self.on_command:
            self.on_command(message.payload)

    # --- Sender -------------------------------------------------------------------------------
    def ready(self) -> bool:
        return self._connected.is_set()

    def send(self, events: list[dict[str, Any]]) -> list[str | None]:
        """Publish at QoS 1 and wait for every PUBACK; an event without one gets an error."""
        infos = []
        for event in events:
            if not self._connected.is_set():
                infos.append(None)
                continue
            infos.append(
                self.client.publish(event_topic(self.address, event["station"], event["tool"]), encode(event), qos=1)
            )
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        results: list[str | None] = []
        for info in infos:
            if info is None:
                results.append("broker not connected")
                continue
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                results.append(f"publish failed: {mqtt.error_string(info.rc)}")
                continue
            while not info.is_published() and time.monotonic() < deadline and self._connected.is_set():
                info.wait_for_publish(min(0.2, max(0.0, deadline - time.monotonic())))  # woken by the PUBACK
            results.append(None if info.is_published() else "no PUBACK from the broker")
        return results
