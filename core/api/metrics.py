"""Prometheus metrics of one API app, in a registry of its own (two apps in a process never mix)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ApiMetrics:
    """Requests by route and status, request latency by route, and decisions by tool."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("studio_api_requests", "HTTP requests served, by route template, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("studio_api_request_seconds", "Time to answer a request, by route template",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.decisions = Counter("studio_api_decisions", "Inspections answered through the API, by tool and decision",
                                 ["tool", "decision"], registry=self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP response and times it. The route label is the matched
    route's template (``/v1/tools/{name}/inspect``), or ``unmatched``, so labels stay few."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
