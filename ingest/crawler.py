"""The crawler: polls sources on their schedule and turns what they find into delivered articles.

Per item: exact-repeat pre-check (so a known story costs no page fetch) → enrich (page text)
→ normalise → exact / near-duplicate check → ``sink.send`` → marked seen only once the sink
confirmed. Bad input and failed fetches are logged with the reason and counted; nothing a
source does stops the crawler. A source whose poll fails is backed off exponentially.

Embedded use (no Kafka)::

    queue: asyncio.Queue[Article] = asyncio.Queue()
    async with Crawler(settings.ingest, CallbackSink(queue.put)) as crawler:
        await crawler.run_forever(stop_event)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_network
from types import TracebackType
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, CollectorRegistry

from finpulse.contracts import Article
from finpulse.retry import backoff_s
from ingest.config import IngestSettings, SourceOptions
from ingest.dedup import Deduplicator, Verdict
from ingest.fetch import Clock, Fetcher, FetchError, Sleep
from ingest.metrics import CrawlerMetrics
from ingest.normalise import BadItem, Normaliser, RawItem
from ingest.sinks.base import Sink
from ingest.sources import Source, SourceContext, build_source
from ingest.state import StateStore

log = logging.getLogger(__name__)

ProducedHook = Callable[[Article, RawItem], None]


@dataclass
class PollStats:
    """What one poll of one source did; ``failed`` means the source itself failed."""

    source: str
    items: int = 0
    produced: int = 0
    exact: int = 0
    near: int = 0
    errors: int = 0
    undelivered: int = 0
    failed: bool = False
    retry_after: float | None = None  # the server asked us to wait this long (429/503)
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_messages: list[str] = field(default_factory=list)  # the first few, for reports


def _fetcher(settings: IngestSettings, clock: Clock, sleep: Sleep) -> Fetcher:
    """The one HTTP client of a crawl, with the politeness and retry limits of ``[ingest]``."""
    return Fetcher(
        user_agent=settings.effective_user_agent,
        timeout_s=settings.request_timeout_s,
        max_retries=settings.max_retries,
        backoff_s=settings.retry_backoff_s,
        backoff_max_s=settings.retry_backoff_max_s,
        host_min_interval_s=settings.host_min_interval_s,
        host_concurrency=settings.host_concurrency,
        robots_ttl_s=settings.robots_ttl_s,
        max_redirects=settings.max_redirects,
        retry_after_max_s=settings.retry_backoff_max_s,
        allow_private=[ip_network(n) for n in settings.allow_private_addresses],
        clock=clock,
        sleep=sleep,
    )


class Crawler:
    def __init__(
        self,
        settings: IngestSettings,
        sink: Sink,
        *,
        sources: Sequence[SourceOptions] | None = None,
        registry: CollectorRegistry = REGISTRY,
        store: StateStore | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_produced: ProducedHook | None = None,
        max_in_flight: int = 1000,
    ) -> None:
        self.settings, self.sink = settings, sink
        self.metrics = CrawlerMetrics(registry)
        self.store = store or StateStore(settings.dedup_db)
        self.dedup = Deduplicator(
            self.store,
            near=settings.near_duplicates == "drop",
            threshold=settings.near_dup_threshold,
            window_s=settings.near_dup_window_h * 3600,
        )
        self.normaliser = Normaliser(settings.watchlist, settings.default_lang, ciks=settings.ciks)
        self._clock, self._sleep, self._on_produced = clock, sleep, on_produced
        self._window = asyncio.Semaphore(max_in_flight)
        options = [s for s in (settings.sources if sources is None else sources) if s.enabled]
        needs_http = any(o.kind != "replay" for o in options)
        self.fetcher = _fetcher(settings, clock, sleep) if needs_http else None
        ctx = SourceContext(
            fetcher=self.fetcher,
            store=self.store,
            max_page_bytes=settings.max_page_bytes,
            on_error=self._error,
            on_fetch=self._fetched,
            sleep=sleep,
            clock=clock,
        )
        self.sources: list[Source] = [build_source(o, ctx) for o in options]
        if self.fetcher is not None:  # a source's own rate limit holds whatever the default
            for source in self.sources:
                for url in source.urls():
                    host = urlsplit(url).netloc
                    self.fetcher.limiter.set_interval(host, source.options.host_min_interval_s)
        self._current: dict[str, PollStats] = {}  # the poll in progress, per source
        self._next_due = {s.name: 0.0 for s in self.sources}
        self._failures = {s.name: 0 for s in self.sources}

    async def __aenter__(self) -> Crawler:
        await self.sink.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Flush the sink, then close HTTP and the state store."""
        try:
            await self.sink.close()
        finally:
            if self.fetcher is not None:
                await self.fetcher.aclose()
            self.store.close()

    async def run_once(self) -> list[PollStats]:
        """Poll every source once, now, whatever its schedule."""
        return await self._poll_all(self.sources)

    async def run_due(self, now: float | None = None) -> list[PollStats]:
        """Poll the sources whose time has come (interval, or backoff after failures)."""
        now = self._clock() if now is None else now
        due = [s for s in self.sources if self._next_due.get(s.name, float("inf")) <= now]
        return await self._poll_all(due, now)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Poll on schedule until ``stop`` is set; finite sources (replays) run once."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.run_due()
            pending = [t for t in self._next_due.values() if t != float("inf")]
            if not pending:
                return
            wait = max(0.0, min(pending) - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)

    async def _poll_all(
        self, sources: Sequence[Source], now: float | None = None
    ) -> list[PollStats]:
        stats = await asyncio.gather(*(self.poll(s) for s in sources))
        now = self._clock() if now is None else now
        for source, st in zip(sources, stats, strict=True):
            self._reschedule(source, st, now)
        return list(stats)

    def _reschedule(self, source: Source, stats: PollStats, now: float) -> None:
        if source.finite:
            self._next_due[source.name] = float("inf")
            return
        interval, failed = source.options.interval_s, stats.failed
        self._failures[source.name] = self._failures[source.name] + 1 if failed else 0
        n = self._failures[source.name]
        delay = backoff_s(n, interval, max(interval, self.settings.feed_backoff_max_s))
        delay = max(delay, stats.retry_after or 0.0)  # a server's Retry-After is a floor
        self._next_due[source.name] = now + delay
        if failed:
            log.warning(
                "source %s failed %d time(s) in a row; next poll in %.0fs", source.name, n, delay
            )

    async def poll(self, source: Source) -> PollStats:
        """One poll of one source; never raises for anything the source or its input does."""
        stats = self._current[source.name] = PollStats(source.name)
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for item in source.poll():
                stats.items += 1
                task = await self._handle(source, item, stats)
                if task is not None:
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        except FetchError as exc:
            stats.failed, stats.retry_after = True, exc.retry_after
            self._error(source.name, exc.kind, str(exc))
        except Exception as exc:  # a bug or a library surprise must not stop other sources
            stats.failed = True
            log.exception("source %s crashed", source.name)
            self._error(source.name, "internal", repr(exc))
        finally:
            await asyncio.gather(*tasks)
        if not stats.failed and not stats.undelivered:
            await source.commit()
            self.metrics.last_success.labels(source.name).set(time.time())
        return stats

    async def _handle(self, source: Source, item: RawItem, stats: PollStats) -> asyncio.Task | None:
        if source.dedup and self.dedup.seen(source.name, item.url, item.guid):
            self._duplicate(source.name, "exact", stats)
            return None
        try:
            item = await source.enrich(item)
            article = self.normaliser.article(item)
        except (FetchError, BadItem) as exc:
            self._error(source.name, exc.kind, str(exc))
            return None
        verdict = self.dedup.check(article, item.guid) if source.dedup else None
        if verdict is not None and verdict.kind != "new":
            if verdict.kind == "near":
                log.info(
                    "dropped %s as a near-duplicate of %s",
                    article.url or article.id,
                    verdict.repeat_of,
                )
                self.dedup.commit(verdict)
            self._duplicate(source.name, verdict.kind, stats)
            return None
        await self._window.acquire()
        return asyncio.create_task(self._deliver(source, article, item, verdict, stats))

    async def _deliver(
        self,
        source: Source,
        article: Article,
        item: RawItem,
        verdict: Verdict | None,
        stats: PollStats,
    ) -> None:
        try:
            await self.sink.send(article)
        except Exception as exc:  # DeliveryError, or a sink's bug: the article stays unseen
            stats.undelivered += 1
            self._error(source.name, "delivery", str(exc))
            if verdict is not None:
                self.dedup.release(verdict)
            return
        finally:
            self._window.release()
        if verdict is not None:
            self.dedup.commit(verdict)
        stats.produced += 1
        self.metrics.produced.labels(source.name).inc()
        if self._on_produced is not None:
            self._on_produced(article, item)

    def _duplicate(self, source: str, kind: str, stats: PollStats) -> None:
        setattr(stats, kind, getattr(stats, kind) + 1)
        self.metrics.duplicates.labels(source, kind).inc()

    def _error(self, source: str, kind: str, message: str) -> None:
        log.warning("%s: %s: %s", source, kind, message)
        self.metrics.errors.labels(source, kind).inc()
        stats = self._current.get(source)
        if stats is not None:
            stats.errors += 1
            stats.error_kinds[kind] = stats.error_kinds.get(kind, 0) + 1
            if len(stats.error_messages) < 3:
                stats.error_messages.append(f"{kind}: {message}")

    def _fetched(self, source: str, outcome: str, seconds: float) -> None:
        self.metrics.fetches.labels(source, outcome).inc()
        self.metrics.fetch_seconds.labels(source).observe(seconds)
