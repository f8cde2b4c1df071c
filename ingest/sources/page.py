"""Article pages: fetch one URL and extract its main text (trafilatura), bounded in size.

Used on its own (``kind = "page"``, a fixed list of URLs) and by feeds with ``fetch_pages``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Literal

from pydantic import Field

from ingest.config import SourceOptions
from ingest.fetch import FetchError
from ingest.normalise import RawItem
from ingest.sources.base import Source, SourceContext, register_source

HTML_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"


def extract_page(content: bytes, url: str) -> dict[str, str | None]:
    """Title, main text and date of an HTML page; raises FetchError('extract') if none.

    Bytes go straight to trafilatura, which sniffs the charset, so non-UTF-8 pages work.
    """
    import trafilatura  # heavy import, only needed when pages are fetched

    out = trafilatura.extract(
        content, url=url, output_format="json", with_metadata=True, include_comments=False
    )
    if not out:
        raise FetchError("extract", f"{url}: no main text found")
    doc = json.loads(out)
    return {"title": doc.get("title"), "text": doc.get("text"), "date": doc.get("date")}


async def fetch_page(ctx: SourceContext, source: str, url: str) -> dict[str, str | None]:
    resp = await ctx.get(source, url, accept=HTML_ACCEPT)
    return await asyncio.to_thread(extract_page, resp.content, resp.url)


async def add_page_text(ctx: SourceContext, source: str, item: RawItem) -> RawItem:
    """Replace a feed summary by the page's main text; on failure keep the summary, counted."""
    if item.url:
        try:
            page = await fetch_page(ctx, source, item.url)
        except FetchError as exc:
            ctx.on_error(source, exc.kind, f"{exc}; keeping the summary")
        else:
            item.body = page["text"] or item.body
    return item


class PageOptions(SourceOptions):
    kind: Literal["page"] = "page"
    urls: list[str] = Field(min_length=1)


@register_source
class PageSource(Source):
    kind = "page"
    Options = PageOptions
    options: PageOptions

    def urls(self) -> list[str]:
        return list(self.options.urls)

    async def poll(self) -> AsyncIterator[RawItem]:
        for url in self.options.urls:
            yield RawItem(source=self.name, url=url, lang=self.options.lang)

    async def enrich(self, item: RawItem) -> RawItem:
        page = await fetch_page(self.ctx, self.name, item.url or "")
        item.title, item.body, item.published = page["title"], page["text"], page["date"]
        return item
