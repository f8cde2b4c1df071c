"""Prometheus metrics of the API, on a registry the caller owns (served on api.metrics_port)."""

from __future__ import annotations

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
