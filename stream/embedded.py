"""The whole pipeline in one process: sources → score → store → rates → alerts.

The same core as the Faust workers (``stream/pipeline.py``), driven by bounded asyncio queues
instead of Kafka: when the store is down the writer retries, the queues fill and the sources
are paused by back-pressure — nothing is dropped. This is what the demo and a single-machine
user run.

The running rate windows are saved beside the store after every batch (``rates_state``),
so a restart neither forgets the counts of the open windows nor counts an article twice
(only articles new to the store are counted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from finpulse.contracts import Article, ScoredArticle
from stream.alerting import Alerting
from stream.config import StreamSettings
from stream.deadletter import DeadLetterSink
from stream.metrics import StreamMetrics
from stream.pipeline import Pipeline, RunningWindows
from stream.scoring import BatchScorer
from stream.sinks.base import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
_DONE: Any = object()


@dataclass
class RunStats:
    received: int = 0
    scored: int = 0
    new: int = 0
    deadletters: int = 0
    windows: int = 0
    alerts: int = 0


async def take(queue: asyncio.Queue[T], max_: int, within: float) -> list[T]:
    """Wait for one item, then gather up to ``max_`` for at most ``within`` seconds."""
    batch = [await queue.get()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(batch) < max_ and batch[-1] is not _DONE:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:  # asyncio.timeout, not wait_for: wait_for can swallow a cancellation in 3.11
            async with asyncio.timeout(remaining):
                batch.append(await queue.get())
        except TimeoutError:
            break
    return batch


class EmbeddedRunner:
    """Ingest → :meth:`put` → bounded queues → the :class:`Pipeline`'s steps → the windows."""

    def __init__(
        self,
        settings: StreamSettings,
        pipeline: Pipeline,
        windows: RunningWindows,
        metrics: StreamMetrics,
    ) -> None:
        self.settings, self.pipeline, self.windows = settings, pipeline, windows
        self.metrics, self.alerts = metrics, windows.alerting
        self.stats = RunStats()
        self._raw: asyncio.Queue[Article] = asyncio.Queue(settings.queue_size)
        self._scored: asyncio.Queue[list[ScoredArticle]] = asyncio.Queue(
            max(1, settings.queue_size // settings.batch_size)
        )

    @classmethod
    def create(
        cls,
        settings: StreamSettings,
        scorer: BatchScorer,
        store: Store,
        deadletters: DeadLetterSink,
        metrics: StreamMetrics,
        *,
        evidence_size: int,
        alerts: Alerting | None = None,
        rates_state: Path | None = None,
    ) -> EmbeddedRunner:
        """A runner whose windows carry on from ``rates_state`` (when given)."""
        rate_args = settings.rate_args(evidence_size)
        windows = RunningWindows.restore(rates_state, rate_args, alerts)
        pipeline = Pipeline(
            scorer, store, deadletters, metrics, counter=windows.rates.counter,
            retry_initial_s=settings.store_retry_initial_s, retry_max_s=settings.store_retry_max_s,
        )  # fmt: skip
        return cls(settings, pipeline, windows, metrics)

    async def put(self, article: Article) -> None:
        """The way in for ingest (``CallbackSink(runner.put)``); waits while the queue is full."""
        await self._raw.put(article)
        self.stats.received += 1
        self.metrics.consumer_lag.labels("embedded", "0").set(self._raw.qsize())

    async def run(self, *feeds: Awaitable[None]) -> RunStats:
        """Process until every feed returns (a replay) or the task is cancelled.

        A feed is a coroutine that calls :meth:`put`, e.g. the ingest crawler with a
        ``CallbackSink(runner.put)``, or :meth:`drain` of an async iterable of articles.
        """
        await asyncio.to_thread(self.pipeline.scorer.refresh, True)  # fail fast without a model

        async def feed_all() -> None:
            await asyncio.gather(*feeds)
            await self._raw.put(_DONE)

        tasks = [asyncio.create_task(c) for c in (feed_all(), self._score(), self._store())]
        if self.alerts:
            tasks.append(asyncio.create_task(self._tick()))
        try:
            # A failing stage must not leave the feeds blocked on a full queue forever.
            done, _ = await asyncio.wait(tasks[:3], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
            if self.alerts is not None:  # a replay ended: deliver what it queued
                self.stats.alerts += len(await self.alerts.tick(wait=True))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.stats.deadletters = self.pipeline.dead.count
        return self.stats

    async def drain(self, source: AsyncIterable[Article]) -> None:
        async for article in source:
            await self.put(article)

    async def _score(self) -> None:
        s = self.settings
        while True:
            batch = await take(self._raw, s.batch_size, s.batch_within_s)
            done = batch[-1] is _DONE
            articles = [a for a in batch if a is not _DONE]
            self.metrics.consumer_lag.labels("embedded", "0").set(self._raw.qsize())
            if articles:
                scored = (await self.pipeline.score_articles(articles)).articles
                self.stats.scored += len(scored)
                if scored:
                    await self._scored.put(scored)
            if done:
                await self._scored.put(_DONE)
                return

    async def _store(self) -> None:
        while (scored := await self._scored.get()) is not _DONE:
            stored = await self.pipeline.store_articles(scored)
            folded = await self.windows.fold(stored.deltas)
            self.stats.new += len(stored.new)
            self.stats.windows += len(folded.windows)
            self.stats.alerts += len(folded.alerts)

    async def _tick(self) -> None:
        assert self.alerts is not None
        while True:
            await asyncio.sleep(self.settings.alert_tick_s)
            self.stats.alerts += len(await self.alerts.tick())
