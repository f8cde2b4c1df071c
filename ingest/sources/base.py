"""The one interface every source implements, and the registry that finds a kind by name.

A source only finds items (:class:`~ingest.normalise.RawItem`); normalisation, dedup,
delivery, scheduling and metrics belong to the crawler, so a new kind is a small class::

    @register_source
    class MySource(Source):
        kind = "mine"
        Options = MyOptions          # a SourceOptions subclass with kind: Literal["mine"]

        async def poll(self): ...    # an async generator of RawItem
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import ClassVar

from ingest.config import SourceOptions
from ingest.fetch import Fetcher, FetchError, Response, Sleep
from ingest.normalise import RawItem
from ingest.state import StateStore

ErrorHook = Callable[[str, str, str], None]  # (source, kind, message)
FetchHook = Callable[[str, str, float], None]  # (source, outcome, seconds)


@dataclass
class SourceContext:
    """What sources may use: the shared fetcher and state, and hooks the crawler counts."""

    fetcher: Fetcher | None
    store: StateStore
    max_page_bytes: int
    on_error: ErrorHook
    on_fetch: FetchHook
    sleep: Sleep
    clock: Callable[[], float] = time.monotonic

    async def get(
        self,
        source: str,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
        headers: dict[str, str] | None = None,
    ) -> Response:
        """A counted, timed fetch; errors are counted by kind and re-raised."""
        if self.fetcher is None:
            raise FetchError("config", f"source {source} needs HTTP but the crawler has none")
        start = time.perf_counter()
        try:
            resp = await self.fetcher.get(
                url,
                max_bytes=self.max_page_bytes,
                etag=etag,
                last_modified=last_modified,
                accept=accept,
                headers=headers,
            )
        except FetchError:
            self.on_fetch(source, "error", time.perf_counter() - start)
            raise
        outcome = "not_modified" if resp.not_modified else "ok"
        self.on_fetch(source, outcome, time.perf_counter() - start)
        return resp


class Source(ABC):
    """One configured source. ``poll`` yields what it finds now; the crawler does the rest."""

    kind: ClassVar[str]
    Options: ClassVar[type[SourceOptions]]
    finite: ClassVar[bool] = False  # True: polled once by run_forever (e.g. a file replay)

    def __init__(self, options: SourceOptions, ctx: SourceContext) -> None:
        self.options, self.ctx = options, ctx

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def dedup(self) -> bool:
        """Whether the crawler drops repeats from this source (replays of labeled files don't)."""
        return True

    def urls(self) -> list[str]:
        """The URLs this source polls (shown by ``crawl --dry-run``; paced per host)."""
        return []

    @abstractmethod
    def poll(self) -> AsyncIterator[RawItem]:
        """Yield the items available now; raise :class:`FetchError` if the source failed."""

    async def enrich(self, item: RawItem) -> RawItem:
        """Complete an item that is not a known repeat (e.g. fetch its page); default: as is."""
        return item

    async def commit(self) -> None:  # noqa: B027 - optional hook
        """Called once every item of the last poll was delivered (e.g. save the ETag)."""


_REGISTRY: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator: make ``cls`` available as ``kind = "<cls.kind>"`` in the config."""
    known = _REGISTRY.get(cls.kind)
    if known is not None and known.__qualname__ != cls.__qualname__:  # same class re-imported: ok
        raise ValueError(f"source kind {cls.kind!r} is already registered")
    _REGISTRY[cls.kind] = cls
    return cls


def source_class(kind: str) -> type[Source]:
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown source kind {kind!r} (known: {known})") from None


def options_model(kind: str) -> type[SourceOptions]:
    return source_class(kind).Options


def build_source(options: SourceOptions, ctx: SourceContext) -> Source:
    return source_class(options.kind)(options, ctx)
