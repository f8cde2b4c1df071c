"""Settings of the crawlers and replay (section ``[ingest]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_agent: str = "finpulse/0.1 (+https://github.com/finpulse/finpulse)"
    request_timeout_s: float = Field(default=10.0, gt=0)
    dedup_db: Path = Path("var/ingest.db")
    watchlist: dict[str, list[str]] = Field(default_factory=dict)
