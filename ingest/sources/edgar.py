"""SEC EDGAR's "latest filings" Atom feed, read for what it carries beyond a headline.

An entry's title is ``8-K - Apple Inc. (0000320193) (Filer)`` and its summary lists the 8-K
items (``Item 2.02: Results of Operations and Financial Condition``). The item list is what a
reader (and the topic model) needs, and the CIK is how a filing finds its ticker, so both go
into the article: title ``Apple Inc. files 8-K: Item 2.02 Results of Operations ...`` and
``RawItem.ciks`` mapped to tickers by the normaliser (watchlist / company_tickers.json).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from ingest.normalise import RawItem
from ingest.sources.base import register_source
from ingest.sources.rss import RssOptions, RssSource

_TITLE = re.compile(r"^(?P<form>.+?) - (?P<company>.+?) \((?P<cik>\d{1,10})\) \((?P<role>[^)]*)\)$")
_ITEM = re.compile(r"Item (\d+\.\d+):\s*([^<\n]+?)\s*(?=<|\n|Item \d|$)")


class EdgarOptions(RssOptions):
    kind: Literal["edgar_atom"] = "edgar_atom"  # type: ignore[assignment]


def filing_title(title: str, summary: str) -> tuple[str, list[int]]:
    """A readable title and the CIKs named in an EDGAR entry title.

    >>> filing_title("8-K - Apple Inc. (0000320193) (Filer)",
    ...              "<b>Filed:</b> 2026-01-02 <br>Item 2.02: Results of Operations<br>")
    ('Apple Inc. files 8-K: Item 2.02 Results of Operations', [320193])
    >>> filing_title("Odd title", "")
    ('Odd title', [])
    """
    m = _TITLE.match(title.strip())
    if not m:
        return title, []
    items = "; ".join(f"Item {n} {text}" for n, text in _ITEM.findall(summary))
    head = f"{m['company']} files {m['form']}"
    return (f"{head}: {items}" if items else head), [int(m["cik"])]


@register_source
class EdgarSource(RssSource):
    kind = "edgar_atom"
    Options = EdgarOptions

    def item(self, entry: Any) -> RawItem:
        item = super().item(entry)
        item.title, item.ciks = filing_title(item.title or "", entry.get("summary") or "")
        return item
