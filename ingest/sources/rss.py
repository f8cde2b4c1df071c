"""RSS / Atom feeds via feedparser, with conditional GET so an unchanged feed costs a 304."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import feedparser
from pydantic import Field

from ingest.config import SourceOptions
from ingest.fetch import FetchError
from ingest.normalise import RawItem
from ingest.sources.base import Source, register_source
from ingest.sources.page import add_page_text

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


class RssOptions(SourceOptions):
    kind: Literal["rss"] = "rss"
    url: str = Field(pattern=r"^https?://")
    fetch_pages: bool = False  # replace each entry's summary by its page's main text
    tickers: list[str] = Field(default_factory=list)  # every entry is about these (per-ticker feed)
    # <category domain=...> schemes whose terms are tickers ("Nasdaq:ACME" -> ACME), matched
    # as a suffix so http/https spellings of one scheme both count.
    ticker_schemes: list[str] = Field(default_factory=list)


def entry_item(source: str, entry: Any, lang: str | None) -> RawItem:
    """One feed entry as a raw item; missing fields stay None for the normaliser to judge."""
    content = entry.get("content") or []
    body = content[0].get("value") if content else entry.get("summary")
    return RawItem(
        source=source,
        title=entry.get("title"),
        url=entry.get("link"),
        guid=entry.get("id"),
        body=body,
        # dict.get: FeedParserDict's own get maps updated→published with a DeprecationWarning
        published=dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed"),
        lang=lang,
    )


def category_tickers(entry: Any, schemes: list[str]) -> list[str]:
    """Tickers from categories in the given schemes, without the exchange prefix.

    >>> category_tickers({"tags": [{"term": "Nasdaq:ACME", "scheme": "https://gnw/rss/stock"},
    ...                            {"term": "Earnings", "scheme": None}]}, ["gnw/rss/stock"])
    ['ACME']
    """
    out = []
    for tag in entry.get("tags") or []:
        scheme, term = tag.get("scheme") or "", (tag.get("term") or "").strip()
        if term and any(scheme.endswith(s) for s in schemes):
            out.append(term.rsplit(":", 1)[-1].strip())
    return out


@register_source
class RssSource(Source):
    kind = "rss"
    Options = RssOptions
    options: RssOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._validators: tuple[str | None, str | None] | None = None
        self._url = self.options.url

    def urls(self) -> list[str]:
        return [self.options.url]

    def item(self, entry: Any) -> RawItem:
        """One entry as a raw item; kinds with a richer format override this."""
        item = entry_item(self.name, entry, self.options.lang)
        schemes = self.options.ticker_schemes
        item.tickers = [*self.options.tickers, *category_tickers(entry, schemes)]
        return item

    async def poll(self) -> AsyncIterator[RawItem]:
        # A feed that moved permanently is fetched at its new address from then on.
        url = self.ctx.store.moved_to(self.options.url) or self.options.url
        etag, last_modified = self.ctx.store.validators(url)
        resp = await self.ctx.get(
            self.name, url, etag=etag, last_modified=last_modified, accept=FEED_ACCEPT
        )
        self._validators = None
        if resp.moved_to:
            self.ctx.store.save_moved(self.options.url, resp.moved_to)
            self.ctx.on_error(
                self.name,
                "moved",
                f"{url} moved permanently to {resp.moved_to}: polling that from now on; "
                "update the url in the config",
            )
        self._url = resp.moved_to or url
        if resp.not_modified:
            return
        parsed = feedparser.parse(
            resp.content, response_headers={"content-type": resp.headers.get("content-type", "")}
        )
        if parsed.get("bozo"):
            reason = f"{url}: malformed feed ({parsed.get('bozo_exception')})"
            if not parsed.entries:
                raise FetchError("parse", reason)
            self.ctx.on_error(self.name, "parse", reason + "; using the entries that parsed")
        self._validators = (resp.headers.get("etag"), resp.headers.get("last-modified"))
        for entry in parsed.entries:
            yield self.item(entry)

    async def enrich(self, item: RawItem) -> RawItem:
        return await add_page_text(self.ctx, self.name, item) if self.options.fetch_pages else item

    async def commit(self) -> None:
        if self._validators and any(self._validators):
            self.ctx.store.save_validators(self._url, *self._validators)
