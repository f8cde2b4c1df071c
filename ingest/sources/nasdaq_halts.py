"""Nasdaq Trader's trading-halts feed: every US halt and resumption, as articles per ticker.

The feed is RSS 2.0 whose items carry the facts in the ``ndaq:`` namespace (``IssueSymbol``,
``IssueName``, ``Market``, ``ReasonCode``, ``HaltDate`` ``MM/DD/YYYY``, ``HaltTime``, and the
``Resumption*`` fields once trading resumes); the item title is only the symbol and there is no
link. Times are US Eastern wall-clock time. A halt and its resumption become two articles
(their guids differ), each tagged with the symbol.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ingest.normalise import RawItem
from ingest.sources.base import register_source
from ingest.sources.rss import RssOptions, RssSource

EASTERN = ZoneInfo("America/New_York")
# The codes that make most halts, worded after Nasdaq's published halt-code legend.
REASONS = {
    "T1": "news pending",
    "T2": "news released",
    "T3": "news and resumption times",
    "T5": "single stock trading pause",
    "T6": "extraordinary market activity",
    "T12": "additional information requested by Nasdaq",
    "H10": "SEC trading suspension",
    "H11": "regulatory concern",
    "LUDP": "limit up-limit down volatility pause",
    "M": "volatility trading pause",
    "MWC1": "market-wide circuit breaker level 1",
    "MWC2": "market-wide circuit breaker level 2",
    "MWC3": "market-wide circuit breaker level 3",
    "D": "security deleted",
}


class NasdaqHaltsOptions(RssOptions):
    kind: Literal["nasdaq_halts"] = "nasdaq_halts"  # type: ignore[assignment]


def eastern(date: str | None, time: str | None) -> datetime | None:
    """``06/16/2026`` + ``14:19:52.826`` (Eastern) as an aware datetime; None if incomplete.

    >>> eastern("06/16/2026", "14:19:52.826").isoformat()
    '2026-06-16T14:19:52.826000-04:00'
    >>> eastern("06/16/2026", "") is None
    True
    """
    if not date or not time:
        return None
    for fmt in ("%m/%d/%Y %H:%M:%S.%f", "%m/%d/%Y %H:%M:%S"):
        try:
            return datetime.strptime(f"{date.strip()} {time.strip()}", fmt).replace(tzinfo=EASTERN)
        except ValueError:
            continue
    return None


def halt_item(source: str, entry: Any) -> RawItem:
    def field(key: str) -> str:
        return (entry.get(f"ndaq_{key}") or "").strip()

    symbol = field("issuesymbol") or (entry.get("title") or "").strip()
    name, market, code = field("issuename") or symbol, field("market"), field("reasoncode")
    halted = eastern(field("haltdate"), field("halttime"))
    resumed = eastern(field("resumptiondate"), field("resumptiontradetime"))
    where = f" on {market}" if market else ""
    if resumed:
        title = f"Trading resumed: {name} ({symbol}){where}"
    else:
        reason = f", reason {code}" + (f" ({REASONS[code]})" if code in REASONS else "")
        title = f"Trading halt: {name} ({symbol}){where}{reason if code else ''}"
    guid = f"halt:{symbol}:{field('haltdate')} {field('halttime')}"
    if resumed:
        guid += f":resumed:{field('resumptiondate')} {field('resumptiontradetime')}"
    return RawItem(
        source=source,
        title=title,
        guid=guid if symbol else None,
        published=resumed or halted or dict.get(entry, "published_parsed"),
        lang="en",
        tickers=[symbol] if symbol else [],
    )


@register_source
class NasdaqHaltsSource(RssSource):
    kind = "nasdaq_halts"
    Options = NasdaqHaltsOptions

    def item(self, entry: Any) -> RawItem:
        return halt_item(self.name, entry)
