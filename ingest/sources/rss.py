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


@register_source
class RssSource(Source):
    kind = "rss"
    Options = RssOptions
    options: RssOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._validators: tuple[str | None, str | None] | None = None

    async def poll(self) -> AsyncIterator[RawItem]:
        url = self.options.url
        etag, last_modified = self.ctx.store.validators(url)
        resp = await self.ctx.get(
            self.name, url, etag=etag, last_modified=last_modified, accept=FEED_ACCEPT
        )
        self._validators = None
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
            yield entry_item(self.name, entry, self.options.lang)

    async def enrich(self, item: RawItem) -> RawItem:
        return await add_page_text(self.ctx, self.name, item) if self.options.fetch_pages else item

    async def commit(self) -> None:
        if self._validators and any(self._validators):
            self.ctx.store.save_validators(self.options.url, *self._validators)
