"""Settings of the crawlers and replay (section ``[ingest]``).

Sources are listed as ``[[ingest.sources]]`` tables; ``kind`` picks the registered source
class, whose own options model validates the rest of the table, so a typo in a feed entry
fails at load time with the key that is wrong.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


class SourceOptions(BaseModel):
    """Options every source shares; each kind subclasses this with its own fields."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    interval_s: float = Field(default=300.0, gt=0)
    enabled: bool = True
    lang: str | None = None  # fixed language; None = detect


def _resolve_kind(value: Any) -> Any:
    if isinstance(value, dict):
        from ingest.sources import options_model  # lazy: sources import httpx, feedparser

        return options_model(value.get("kind", "rss")).model_validate({"kind": "rss", **value})
    return value


SourceSpec = Annotated[SourceOptions, BeforeValidator(_resolve_kind)]
# Kept as text (so the config prints back as TOML), validated as an IP network.
Network = Annotated[str, AfterValidator(lambda v: str(ip_network(v, strict=False)))]


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[SourceSpec] = Field(default_factory=list)
    user_agent: str = "finpulse/0.1 (+https://github.com/finpulse/finpulse)"
    request_timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, description="HTTP retries per request")
    retry_backoff_s: float = Field(default=0.5, ge=0, description="first retry delay; doubles")
    retry_backoff_max_s: float = Field(default=30.0, ge=0)
    host_min_interval_s: float = Field(default=1.0, ge=0, description="per-host request spacing")
    host_concurrency: int = Field(default=2, ge=1)
    robots_ttl_s: float = Field(default=3600.0, ge=0)
    max_page_bytes: int = Field(default=2_000_000, ge=1024)
    max_redirects: int = Field(default=5, ge=0)
    # Private/loopback/link-local networks a fetch may reach anyway (tests: ["127.0.0.1/32"]).
    allow_private_addresses: list[Network] = Field(default_factory=list)
    feed_backoff_max_s: float = Field(default=3600.0, gt=0, description="cap on failing-feed wait")
    dedup_db: Path = Path("var/ingest.db")
    near_duplicates: Literal["drop", "off"] = "drop"
    near_dup_threshold: float = Field(default=0.5, gt=0, le=1)
    near_dup_window_h: float = Field(default=72.0, gt=0)
    default_lang: str = "en"
    watchlist: dict[str, list[str]] = Field(default_factory=dict)
    spool_path: Path = Path("var/ingest-spool.jsonl")
    producer_linger_ms: int = Field(default=20, ge=0)
    delivery_retries: int = Field(default=3, ge=0, description="re-sends after the client gives up")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=18001, ge=0, le=65535)
