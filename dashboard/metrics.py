"""Prometheus metrics of the API, on a registry the caller owns (served on api.metrics_port)."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, float("inf"))


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.requests = Counter(
            "finpulse_api_requests",
            "API requests by route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "finpulse_api_request_seconds",
            "API request latency (event streams excluded).",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


def measure(app: FastAPI, metrics: ApiMetrics) -> None:
    """Count and time every ``/api`` request by route template (not by raw path, so ids do
    not explode the label set); the open-ended event stream is not measured."""

    @app.middleware("http")
    async def measure(request: Request, call_next):  # noqa: ANN001 - starlette hook
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        if path.startswith("/api") and path != "/api/events":
            metrics.requests.labels(request.method, path, str(response.status_code)).inc()
            metrics.latency.labels(path).observe(time.perf_counter() - start)
        return response
