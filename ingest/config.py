"""Settings of the crawlers and replay (section ``[ingest]``).

Sources are listed as ``[[ingest.sources]]`` tables; ``kind`` picks the registered source
class, whose own options model validates the rest of the table, so a typo in a feed entry
fails at load time with the key that is wrong. ``"preset:NAME"`` (or a table with
``preset = "NAME"`` and overrides) names a curated real source (:mod:`ingest.presets`); presets
are expanded here, once the contact, keys and watchlist they depend on are known.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    model_validator,
)


class SourceOptions(BaseModel):
    """Options every source shares; each kind subclasses this with its own fields."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    interval_s: float = Field(default=300.0, gt=0)
    enabled: bool = True
    lang: str | None = None  # fixed language; None = detect
    # Spacing floor between requests to this source's host (presets carry the source's limit).
    host_min_interval_s: float = Field(default=0.0, ge=0)


class PresetRef(BaseModel):
    """A preset named in ``sources``, with overrides; replaced by its sources on validation."""

    model_config = ConfigDict(extra="forbid")

    preset: str
    overrides: dict[str, Any] = Field(default_factory=dict)


def _resolve_kind(value: Any) -> Any:
    if isinstance(value, str):
        from ingest.presets import PREFIX

        if not value.startswith(PREFIX):
            raise ValueError(f"a source is a table or {PREFIX!r}NAME, not {value!r}")
        return PresetRef(preset=value.removeprefix(PREFIX))
    if isinstance(value, dict) and "preset" in value:
        rest = {k: v for k, v in value.items() if k != "preset"}
        return PresetRef(preset=str(value["preset"]).removeprefix("preset:"), overrides=rest)
    if isinstance(value, dict):
        from ingest.sources import options_model  # lazy: sources import httpx, feedparser

        return options_model(value.get("kind", "rss")).model_validate({"kind": "rss", **value})
    return value


SourceSpec = Annotated[SourceOptions | PresetRef, BeforeValidator(_resolve_kind)]
# Kept as text (so the config prints back as TOML), validated as an IP network.
Network = Annotated[str, AfterValidator(lambda v: str(ip_network(v, strict=False)))]


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[SourceSpec] = Field(default_factory=list)
    user_agent: str = "finpulse/0.1 (+https://github.com/finpulse/finpulse)"
    # Who to contact about this crawler, added to the User-Agent; SEC EDGAR requires one.
    contact: str | None = Field(default=None, pattern=r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")
    api_keys: dict[str, SecretStr] = Field(default_factory=dict)  # for presets that need one
    request_timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, description="HTTP retries per request")
    retry_backoff_s: float = Field(default=0.5, ge=0, description="first retry delay; doubles")
    # Longest wait between retries, also the longest Retry-After honoured inside one poll;
    # a longer one ends the poll and the source's next poll waits for it.
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
    # CSV of ticker,cik,names merged into `watchlist`; "builtin:us-large-caps" is shipped and
    # used by default when presets are named and no watchlist is configured.
    watchlist_file: str | None = None
    company_tickers_file: Path | None = None  # SEC company_tickers.json: CIK -> ticker for all
    spool_path: Path = Path("var/ingest-spool.jsonl")
    delivery_retries: int = Field(default=3, ge=0, description="re-sends after the client gives up")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=18001, ge=0, le=65535)

    _ciks: dict[int, str] = PrivateAttr(default_factory=dict)

    @property
    def effective_user_agent(self) -> str:
        """The User-Agent sent: ``user_agent`` with ``contact`` added inside its comment."""
        if not self.contact or self.contact in self.user_agent:
            return self.user_agent
        if self.user_agent.endswith(")"):
            return f"{self.user_agent[:-1]}; {self.contact})"
        return f"{self.user_agent} ({self.contact})"

    @property
    def ciks(self) -> dict[int, str]:
        """SEC CIK → ticker, from the watchlist file and ``company_tickers_file``."""
        return self._ciks

    @model_validator(mode="after")
    def _tickers_and_presets(self) -> IngestSettings:
        from ingest import watchlist  # lazy: only configs that name files read them

        refs = [s for s in self.sources if isinstance(s, PresetRef)]
        if refs and not self.watchlist and not self.watchlist_file:
            self.watchlist_file = watchlist.DEFAULT_WATCHLIST
        if self.watchlist_file:
            loaded = watchlist.load_watchlist(self.watchlist_file)
            merged = loaded.merge(watchlist.Watchlist(self.watchlist))
            self.watchlist, self._ciks = merged.aliases, dict(loaded.ciks)
        if self.company_tickers_file:
            self._ciks = {**watchlist.load_company_tickers(self.company_tickers_file), **self._ciks}
        if refs:
            self.sources = expand_sources(self.sources, self)
        names = [s.name for s in self.sources]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"two sources are named {dupes[0]!r}; names must be unique")
        return self


def expand_sources(entries: list[Any], settings: IngestSettings) -> list[SourceOptions]:
    """``entries`` with every preset reference replaced by the sources it stands for."""
    from ingest.presets import expand, member_names
    from ingest.sources import options_model

    out: list[SourceOptions] = []
    for entry in entries:
        if not isinstance(entry, PresetRef):
            out.append(entry)
            continue
        for name in member_names([entry.preset]):
            for table in expand(name, entry.overrides, settings):
                out.append(options_model(table["kind"]).model_validate(table))
    return out
