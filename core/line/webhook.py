"""Webhook output: each event POSTed as JSON, its body signed with HMAC-SHA256.

Headers: ``X-Studio-Event-Id`` (drop duplicates by it), ``X-Studio-Signature: sha256=<hex>`` of
the raw body with the output's key. Failed posts are retried by the outbox with back-off.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from core.errors import InvalidInputError
from core.line.events import encode

TIMEOUT_S = 5.0


def check_url(url: str) -> str:
    if urlparse(url).scheme not in ("http", "https") or not urlparse(url).hostname:
        raise InvalidInputError(f"a webhook URL starts with http:// or https://, not {url!r}")
    return url


def signature(key: str, body: bytes) -> str:
    """``sha256=<hex>``: what a receiver recomputes with the shared key to trust the body."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify(key: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(key, body), header or "")


class WebhookSender:
    """POSTs events one by one; 2xx means delivered."""

    def __init__(self, url: str, key: str | None) -> None:
        self.url, self.key = check_url(url), key or ""
        self.state, self.error = "idle", None

    def ready(self) -> bool:
        return True

    def post(self, event: dict[str, Any]) -> str | None:
        body = encode(event)
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Studio-Event-Id": str(event.get("event_id", "")),
                "X-Studio-Signature": signature(self.key, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError) as error:
            return f"receiver unreachable: {getattr(error, 'reason', error)}"
        return None if 200 <= status < 300 else f"receiver answered HTTP {status}"

    def send(self, events: list[dict[str, Any]]) -> list[str | None]:
        results: list[str | None] = []
        for event in events:
            error = self.post(event)
            results.append(error)
            if error and "unreachable" in error:  # the rest would fail the same way: retry later
                results.extend([error] * (len(events) - len(results)))
                break
        self.state, self.error = ("error", results[-1]) if results and results[-1] else ("ok", None)
        return results
