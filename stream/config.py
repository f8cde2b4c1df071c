"""Settings of the stream workers and the embedded runner (section ``[stream]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class StreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: str = "finpulse"
    # Scoring: a batch is scored when it holds batch_size articles or batch_within_s passed.
    batch_size: int = Field(default=64, ge=1)
    batch_within_s: float = Field(default=0.5, gt=0)
    # How often workers ask the registry whether the champion model changed.
    model_check_s: float = Field(default=5.0, ge=0)
    # Rates: tumbling windows by event time (published_at), with the most negative articles.
    window_s: int = Field(default=300, ge=1)
    evidence_size: int = Field(default=5, ge=0)
    # An article older than this behind the newest one seen still counts; older ones are
    # indexed but left out of the rates, so a re-crawl of old news cannot reopen old windows.
    lateness_s: int = Field(default=3600, ge=0)
    # Kafka topic that re-keys per-batch counts by scope so each key lives on one partition.
    scope_topic: str = "news.scope-events"
    # Store writes: bounded bulk requests; an outage backs off up to store_retry_max_s.
    store_bulk_size: int = Field(default=500, ge=1)
    store_retry_initial_s: float = Field(default=0.5, gt=0)
    store_retry_max_s: float = Field(default=30.0, gt=0)
    # Embedded runner: bounded queues between stages, so a slow store pauses the sources.
    queue_size: int = Field(default=1024, ge=1)
    deadletter_path: Path = Path("var/deadletter.jsonl")
