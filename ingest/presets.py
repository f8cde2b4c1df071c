"""Curated real financial sources, named in a config (``sources = ["preset:fed-press"]``) or on
the command line (``finpulse crawl --preset financial``).

Each preset is a source table that someone checked against the publisher's published format,
terms and rate limits, so a risk team need not research them. A preset expands to ordinary
source options, so the crawler treats it like any hand-written source. Overrides go in a table
(``{preset = "fed-press", interval_s = 900}``); none may poll faster, or space requests to the
host closer, than the preset's floors, which come from the source's terms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from ingest.config import IngestSettings

PREFIX = "preset:"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    kind: str
    url: str  # "{ticker}" in a per-ticker preset
    interval_s: float
    min_interval_s: float  # fastest poll the source's terms or update rate justify
    yields: str
    terms: str
    host_min_interval_s: float = 0.0  # per-host request spacing floor (rate-limit rules)
    needs_contact: bool = False  # publisher requires a contact e-mail in the User-Agent
    api_key: str | None = None  # name under ingest.api_keys
    per_ticker: bool = False  # one source per watchlist ticker ("{ticker}" in the URL)
    per_company: bool = False  # one source over the watchlist's SEC CIKs
    in_financial: bool = True  # part of the `financial` group
    options: Mapping[str, Any] = field(default_factory=dict)


SEC_TERMS = (
    "US government work (public domain). SEC fair access: a User-Agent naming you with a "
    "contact e-mail (set ingest.contact), at most 10 requests/s in total"
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="sec-edgar-filings",
            title="SEC EDGAR filings of watchlist companies (submissions JSON API)",
            kind="edgar_submissions",
            url="https://data.sec.gov/submissions/CIK{cik:010d}.json",
            interval_s=600,
            min_interval_s=300,
            host_min_interval_s=0.2,
            needs_contact=True,
            per_company=True,
            yields="'COMPANY files 8-K: Item 2.02 Results of Operations…' for 8-K, 6-K, 10-K, "
            "10-Q, 20-F, 13D filed in the last 7 days; filing index link; acceptance time; "
            "ticker by CIK (one request per watchlist company with a CIK)",
            terms=SEC_TERMS,
        ),
        Preset(
            name="sec-press",
            title="SEC press releases (RSS)",
            kind="rss",
            url="https://www.sec.gov/news/pressreleases.rss",
            interval_s=900,
            min_interval_s=300,
            host_min_interval_s=0.2,
            needs_contact=True,
            yields="title, summary, link, date (enforcement actions, rules)",
            terms=SEC_TERMS,
        ),
        Preset(
            name="fed-press",
            title="Federal Reserve Board press releases (RSS)",
            kind="rss",
            url="https://www.federalreserve.gov/feeds/press_all.xml",
            interval_s=600,
            min_interval_s=300,
            yields="title, summary, link, date (FOMC statements, enforcement, regulation)",
            terms="US government work (public domain); no published rate limit: polled every "
            "10 min with conditional GET",
        ),
        Preset(
            name="ecb-press",
            title="European Central Bank press releases (RSS)",
            kind="rss",
            url="https://www.ecb.europa.eu/rss/press.html",
            interval_s=900,
            min_interval_s=300,
            yields="title, summary, link, date (monetary policy decisions, supervision)",
            terms="ECB copyright; reproduction allowed with the source acknowledged (the link "
            "is kept)",
        ),
        Preset(
            name="boe-news",
            title="Bank of England news (RSS)",
            kind="rss",
            url="https://www.bankofengland.co.uk/rss/news",
            interval_s=900,
            min_interval_s=300,
            yields="title, summary, link, date",
            terms="Bank of England website terms; headlines and links for internal monitoring",
        ),
        Preset(
            name="globenewswire",
            title="GlobeNewswire: news about public companies (RSS)",
            kind="rss",
            url="https://www.globenewswire.com/RssFeed/orgclass/1/feedTitle/"
            "GlobeNewswire%20-%20News%20about%20Public%20Companies",
            interval_s=600,
            min_interval_s=300,
            host_min_interval_s=2.0,
            yields="title, summary, link, date; tickers from the stock category (e.g. Nasdaq:ACME)",
            terms="releases belong to their issuers; headlines + links for internal monitoring, "
            "do not republish; article pages are not fetched",
            options={"ticker_schemes": ["globenewswire.com/rss/stock"]},
        ),
        Preset(
            name="prnewswire",
            title="PR Newswire: all news releases (RSS)",
            kind="rss",
            url="https://www.prnewswire.com/rss/news-releases-list.rss",
            interval_s=600,
            min_interval_s=300,
            host_min_interval_s=2.0,
            yields="title, summary, link, date",
            terms="restrictive: PR Newswire content may not be republished; headlines + links "
            "for internal monitoring only, article pages are not fetched",
        ),
        Preset(
            name="nasdaq-trade-halts",
            title="Nasdaq Trader: trading halts and resumptions, all US venues (RSS)",
            kind="nasdaq_halts",
            url="https://www.nasdaqtrader.com/rss.aspx?feed=tradehalts",
            interval_s=120,
            min_interval_s=60,
            host_min_interval_s=2.0,
            yields="'Trading halt/resumed: NAME (SYMBOL), reason' with halt time (ET → UTC); "
            "ticker from the symbol",
            terms="public Nasdaq Trader feed, no key; internal monitoring; polled every 2 min",
        ),
        Preset(
            name="yahoo-finance-headlines",
            title="Yahoo Finance headlines per ticker (RSS)",
            kind="rss",
            url="https://feeds.finance.yahoo.com/rss/2.0/headline?s={ticker}&region=US&lang=en-US",
            interval_s=1800,
            min_interval_s=900,
            host_min_interval_s=5.0,
            per_ticker=True,
            in_financial=False,
            yields="title, summary, link, date; the feed's ticker (one feed per watchlist ticker)",
            terms="restrictive: Yahoo's feeds are for personal, non-commercial use; not in the "
            "`financial` group; undocumented endpoint, availability not guaranteed",
        ),
        Preset(
            name="finnhub-news",
            title="Finnhub general market news (JSON API)",
            kind="json_api",
            url="https://finnhub.io/api/v1/news?category=general",
            interval_s=300,
            min_interval_s=60,
            host_min_interval_s=1.0,
            api_key="finnhub",
            in_financial=False,
            yields="headline, summary, url, datetime (epoch), related tickers",
            terms="needs a free API key (ingest.api_keys.finnhub); free plan: 60 calls/min, "
            "personal use; check finnhub.io terms before commercial use",
            options={
                "fields": {
                    "title": "headline",
                    "url": "url",
                    "guid": "id",
                    "body": "summary",
                    "published_at": "datetime",
                    "tickers": "related",
                },
                "api_key_header": "X-Finnhub-Token",
            },
        ),
    )
}

GROUPS: dict[str, tuple[str, ...]] = {
    "financial": tuple(p.name for p in PRESETS.values() if p.in_financial),
}


class PresetError(ValueError):
    """A preset that is unknown, or whose requirements (contact, key, tickers) are not met."""


def member_names(names: Iterable[str]) -> list[str]:
    """Preset names with groups expanded, in order, each once; unknown names raise."""
    out: list[str] = []
    for raw in names:
        name = raw.removeprefix(PREFIX)
        members = GROUPS.get(name, (name,))
        for member in members:
            if member not in PRESETS:
                known = ", ".join([*GROUPS, *PRESETS])
                raise PresetError(f"unknown preset {name!r} (known: {known})")
            if member not in out:
                out.append(member)
    return out


def has_contact(user_agent: str) -> bool:
    return bool(_EMAIL.search(user_agent))


def problem(preset: Preset, settings: IngestSettings) -> str | None:
    """Why ``preset`` cannot run with these settings, or None."""
    if preset.needs_contact and not has_contact(settings.effective_user_agent):
        return (
            f"preset {preset.name}: the publisher requires a contact e-mail in the User-Agent: "
            'set ingest.contact = "you@yourfirm.com" (or FINPULSE_INGEST__CONTACT)'
        )
    if preset.api_key and preset.api_key not in settings.api_keys:
        return (
            f"preset {preset.name}: needs an API key: set ingest.api_keys.{preset.api_key} "
            f"(or FINPULSE_INGEST__API_KEYS__{preset.api_key.upper()})"
        )
    return None


def expand(
    name: str, overrides: Mapping[str, Any], settings: IngestSettings
) -> list[dict[str, Any]]:
    """Source tables for one preset (one per ticker for a per-ticker preset)."""
    preset = PRESETS[name]
    if reason := problem(preset, settings):
        raise PresetError(reason)
    table: dict[str, Any] = {
        "kind": preset.kind,
        "name": preset.name,
        "url": preset.url,
        "interval_s": preset.interval_s,
        "host_min_interval_s": preset.host_min_interval_s,
        **preset.options,
        **overrides,
    }
    if table["interval_s"] < preset.min_interval_s:
        raise PresetError(
            f"preset {name}: interval_s {table['interval_s']:g} is below the polite minimum "
            f"{preset.min_interval_s:g} s for this source"
        )
    if table["host_min_interval_s"] < preset.host_min_interval_s:
        raise PresetError(
            f"preset {name}: host_min_interval_s {table['host_min_interval_s']:g} is below the "
            f"source's rate limit ({preset.host_min_interval_s:g} s between requests)"
        )
    if preset.api_key:
        table["api_key"] = settings.api_keys[preset.api_key]
    if preset.per_company and not table.get("ciks"):
        table["ciks"] = sorted(c for c, t in settings.ciks.items() if t in settings.watchlist)
        if not table["ciks"]:
            raise PresetError(
                f"preset {name} needs SEC CIKs: give watchlist_file rows a cik column "
                "(the shipped builtin:us-large-caps has them)"
            )
    if not preset.per_ticker:
        return [table]
    tickers = table.pop("tickers", None) or sorted(settings.watchlist)
    if not tickers:
        raise PresetError(
            f"preset {name} is per ticker: list tickers in ingest.watchlist or watchlist_file"
        )
    return [
        {
            **table,
            "name": f"{table['name']}:{ticker}",
            "url": table["url"].replace("{ticker}", quote(ticker)),
            "tickers": [ticker],
        }
        for ticker in tickers
    ]


def apply(
    ingest: IngestSettings, names: Iterable[str], *, lenient: bool = False
) -> tuple[IngestSettings, dict[str, str]]:
    """Settings whose sources are the named presets (e.g. for a ``--preset`` option).

    With ``lenient``, presets whose requirements are unmet are left out and returned with the
    reason (preset → reason) instead of failing; any other problem is a one-line PresetError.
    """
    from pydantic import ValidationError

    from finpulse.errors import invalid_fields
    from ingest.config import IngestSettings

    members = member_names(names)
    skipped = {n: r for n in members if lenient and (r := problem(PRESETS[n], ingest))}
    data = ingest.model_dump(exclude={"sources"})
    data["sources"] = [f"{PREFIX}{n}" for n in members if n not in skipped]
    try:
        return IngestSettings.model_validate(data), skipped
    except ValidationError as exc:
        raise PresetError(invalid_fields(exc, with_field=False)) from None
