"""Prometheus metrics of the scoring and indexing stages (names from the agreed catalogue).

One instance per process, bound to a registry so tests can use a fresh one each.

>>> from prometheus_client import CollectorRegistry
>>> m = StreamMetrics(CollectorRegistry())
>>> m.set_model("v3")
>>> m.registry.get_sample_value("finpulse_model_info", {"version": "v3"})
1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info

from finpulse.contracts import RateWindow, ScoredArticle

if TYPE_CHECKING:
    from stream.aggregate import RateCounter

# Lag spans sub-second (live) to days (a replay of old news), so buckets do too.
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400, float("inf"))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, float("inf"))
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"))


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.scored = Counter(
            "finpulse_articles_scored",
            "Articles scored, by predicted topic and sentiment.",
            ["topic", "sentiment"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "finpulse_scoring_batch_size",
            "Articles per scoring batch.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "finpulse_scoring_latency_seconds",
            "Wall time to score one batch.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.lag = Histogram(
            "finpulse_end_to_end_lag_seconds",
            "Time from an article's publication or fetch until it is in the store.",
            ["since"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "finpulse_consumer_lag",
            "Messages not yet consumed (Kafka highwater minus position; queue depth embedded).",
            ["topic", "partition"],
            registry=registry,
        )
        self.deadletters = Counter(
            "finpulse_deadletter",
            "Messages routed to the dead-letter sink, by reason.",
            ["reason"],
            registry=registry,
        )
        self.store_errors = Counter(
            "finpulse_store_errors",
            "Failed store writes (each retry counts).",
            ["store"],
            registry=registry,
        )
        self.late = Counter(
            "finpulse_rate_late_articles",
            "Articles indexed but left out of rates because they were older than the lateness.",
            registry=registry,
        )
        self.clamped = Counter(
            "finpulse_rate_clamped_articles",
            "Articles whose event time was too far ahead of the clock: counted at the limit.",
            registry=registry,
        )
        self.model = Info(
            "finpulse_model", "Model version that scores articles.", registry=registry
        )

    def count_rates(
        self, counter: RateCounter, articles: Sequence[ScoredArticle]
    ) -> list[RateWindow]:
        """``counter.count(articles)``, adding what it left out as late or clamped."""
        late, clamped = counter.late, counter.clamped
        deltas = counter.count(articles)
        self.late.inc(counter.late - late)
        self.clamped.inc(counter.clamped - clamped)
        return deltas

    def set_model(self, version: str, scoring: Mapping[str, Any] | None = None) -> None:
        """The scoring model and, when the scorer says, how it runs: the path and precision
        are chosen per machine at load, so two workers of one version may differ."""
        labels = {"version": version}
        if scoring:
            labels |= {"scoring_path": scoring["path"], "dtype_policy": scoring["dtype_policy"]}
        self.model.info(labels)

    def observe_scored(self, articles: Sequence[ScoredArticle]) -> None:
        for a in articles:
            self.scored.labels(a.topic, a.sentiment.value).inc()

    def observe_indexed(self, articles: Sequence[ScoredArticle], now: datetime) -> None:
        for a in articles:
            self.lag.labels("published").observe(max(0.0, (now - a.published_at).total_seconds()))
            self.lag.labels("fetched").observe(max(0.0, (now - a.fetched_at).total_seconds()))
