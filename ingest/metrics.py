"""The crawler's Prometheus metrics (names from the project's metric catalogue)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class CrawlerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.fetches = Counter(
            "finpulse_crawler_fetches",
            "HTTP fetches by source and outcome (ok, not_modified, error)",
            ["source", "outcome"],
            registry=registry,
        )
        self.produced = Counter(
            "finpulse_crawler_articles_produced",
            "Articles delivered to the sink",
            ["source"],
            registry=registry,
        )
        self.duplicates = Counter(
            "finpulse_crawler_duplicates",
            "Items dropped as repeats (kind: exact = same URL/guid, near = edited republish)",
            ["source", "kind"],
            registry=registry,
        )
        self.errors = Counter(
            "finpulse_crawler_errors",
            "Bad input and failed fetches, by kind",
            ["source", "kind"],
            registry=registry,
        )
        self.fetch_seconds = Histogram(
            "finpulse_crawler_fetch_seconds",
            "Latency of one HTTP fetch (feed, API or page), retries included",
            ["source"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.last_success = Gauge(
            "finpulse_crawler_last_success_timestamp_seconds",
            "Unix time of the last successful poll of a source (flatline alerts use it)",
            ["source"],
            registry=registry,
        )
