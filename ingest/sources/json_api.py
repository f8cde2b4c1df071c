"""JSON news APIs: a configured mapping from each result object to article fields.

>>> item = map_item({"headline": "Deal", "link": {"href": "https://ex.com/d"},
...                  "ts": 1767225600, "syms": ["jpm"]},
...                 FieldMap(title="headline", url="link.href", published_at="ts", tickers="syms"),
...                 source="api")
>>> (item.title, item.url, item.published, item.tickers)
('Deal', 'https://ex.com/d', 1767225600, ['jpm'])
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ingest.config import SourceOptions
from ingest.fetch import FetchError
from ingest.normalise import RawItem
from ingest.sources.base import Source, register_source
from ingest.sources.page import add_page_text


class FieldMap(BaseModel):
    """Dotted paths (``a.b.0.c``) into one result object; unset fields are left missing."""

    model_config = ConfigDict(extra="forbid")

    title: str = "title"
    url: str | None = "url"
    guid: str | None = None
    body: str | None = None
    published_at: str | None = None
    lang: str | None = None
    tickers: str | None = None


class JsonApiOptions(SourceOptions):
    kind: Literal["json_api"] = "json_api"
    url: str = Field(pattern=r"^https?://")
    items_path: str = ""  # dotted path to the list of results; "" = the response is the list
    fields: FieldMap = FieldMap()
    fetch_pages: bool = False
    # Sent as this header rather than in the URL, so the key stays out of logs and errors.
    api_key: SecretStr | None = None
    api_key_header: str = "Authorization"


def lookup(obj: Any, path: str | None) -> Any:
    """The value at a dotted path, or None if any step is missing.

    >>> lookup({"a": [{"b": 1}]}, "a.0.b"), lookup({"a": 1}, "a.x")
    (1, None)
    """
    if path is None:
        return None
    for step in path.split(".") if path else ():
        if isinstance(obj, dict):
            obj = obj.get(step)
        elif (
            isinstance(obj, list)
            and step.lstrip("-").isdigit()
            and -len(obj) <= int(step) < len(obj)
        ):
            obj = obj[int(step)]
        else:
            return None
    return obj


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict | list) else str(value)


def map_item(obj: Any, fields: FieldMap, *, source: str, lang: str | None = None) -> RawItem:
    if not isinstance(obj, dict):
        return RawItem(source=source)  # no title, no id: the normaliser rejects it with a reason
    tickers = lookup(obj, fields.tickers)
    if isinstance(tickers, str):  # e.g. Finnhub's related: "AAPL,MSFT"
        tickers = [t for t in tickers.split(",") if t.strip()]
    return RawItem(
        source=source,
        title=_text(lookup(obj, fields.title)),
        url=_text(lookup(obj, fields.url)),
        guid=_text(lookup(obj, fields.guid)),
        body=_text(lookup(obj, fields.body)),
        published=lookup(obj, fields.published_at),
        lang=lang or _text(lookup(obj, fields.lang)),
        tickers=[str(t) for t in tickers] if isinstance(tickers, list) else [],
    )


@register_source
class JsonApiSource(Source):
    kind = "json_api"
    Options = JsonApiOptions
    options: JsonApiOptions

    def urls(self) -> list[str]:
        return [self.options.url]

    async def poll(self) -> AsyncIterator[RawItem]:
        key = self.options.api_key
        headers = {self.options.api_key_header: key.get_secret_value()} if key else None
        resp = await self.ctx.get(
            self.name, self.options.url, accept="application/json", headers=headers
        )
        try:
            data = json.loads(resp.content)
        except ValueError as exc:  # also covers undecodable bytes
            raise FetchError("parse", f"{self.options.url}: not JSON ({exc})") from None
        items = lookup(data, self.options.items_path)
        if not isinstance(items, list):
            path = self.options.items_path or "(root)"
            raise FetchError("parse", f"{self.options.url}: {path} is not a list")
        for obj in items:
            yield map_item(obj, self.options.fields, source=self.name, lang=self.options.lang)

    async def enrich(self, item: RawItem) -> RawItem:
        return await add_page_text(self.ctx, self.name, item) if self.options.fetch_pages else item
