"""Settings of the stream workers and the embedded runner (section ``[stream]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: str = "finpulse"
    # Scoring: a batch is scored when it holds batch_size articles or batch_within_s passed.
    # Under load batches fill first, so within only bounds the latency of a trickle (paid at
    # each of the two batching stages).
    batch_size: int = Field(default=64, ge=1)
    batch_within_s: float = Field(default=0.2, gt=0)
    # Batches in flight per worker (Faust agent concurrency of `score`): while batches are
    # on the model (its pool runs one per core), the next are decoded and the last ones'
    # results delivered. 1 worker, 2 cores, bench pipeline: 198 / 233 / 252 articles/s
    # with 2 / 3 / 4 in flight (idle CPU 17 % / 11 % / 13 %).
    score_concurrency: int = Field(default=4, ge=1)
    # How often workers ask the registry whether the champion model changed.
    model_check_s: float = Field(default=5.0, ge=0)
    # Rates: tumbling windows by event time (published_at), with the most negative articles
    # (as many as an alert shows: ``alerts.evidence_size``).
    window_s: int = Field(default=300, ge=1)
    # An article older than this behind the newest one seen still counts; older ones are
    # indexed but left out of the rates, so a re-crawl of old news cannot reopen old windows.
    lateness_s: int = Field(default=3600, ge=0)
    # An event time further than this ahead of the clock is a bad date: counted at the limit,
    # so it cannot move the watermark (and make every real article "late").
    future_s: int = Field(default=300, ge=0)
    # Distinct keys per scope (topic, source, ticker) per window; the rest count as "(other)".
    max_keys_per_scope: int = Field(default=1000, ge=1)
    # Store writes: bounded bulk requests; an outage backs off up to store_retry_max_s.
    store_bulk_size: int = Field(default=500, ge=1)
    store_retry_initial_s: float = Field(default=0.5, gt=0)
    store_retry_max_s: float = Field(default=30.0, gt=0)
    # Embedded runner: bounded queues between stages, so a slow store pauses the sources.
    queue_size: int = Field(default=1024, ge=1)
    deadletter_path: Path = Path("var/deadletter.jsonl")
    # Faust's per-app working directory (<faust_dir>/<app id>); tables themselves are in Kafka.
    faust_dir: Path = Path("var/faust")
    # Alerting: how often the engine closes windows whose time is over and delivers its outbox.
    alert_tick_s: float = Field(default=5.0, gt=0)
    # /metrics of `finpulse alerter` (the single alert engine beside the workers).
    alerter_port: int = Field(default=18003, ge=0, le=65535)

    def rate_args(self, evidence_size: int) -> tuple[tuple[int, int, int], dict[str, Any]]:
        """The positional and keyword arguments of ``RateCounter``/``RateAggregator``;
        ``evidence_size`` is ``alerts.evidence_size``, the one place it is set."""
        limits = {"future_s": self.future_s, "max_keys": self.max_keys_per_scope}
        return (self.window_s, evidence_size, self.lateness_s), limits
