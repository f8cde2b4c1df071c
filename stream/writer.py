"""Writes scored articles to the store without losing or duplicating any.

:meth:`StoreWriter.write` returns only once every article is stored or dead-lettered: an
outage is retried with capped exponential backoff, so the caller (a Faust agent that acks
after the batch, or the embedded runner's bounded queue) simply stops pulling — a bounded
buffer, then a pause. Documents the store refuses for good go to the dead-letter sink (the
pipeline's :class:`~stream.pipeline.DeadLetters`, which counts them) so one poison article
cannot stall the stream. The store's ids make retries idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from finpulse.contracts import ScoredArticle, encode, utcnow
from finpulse.retry import Backoff
from stream.deadletter import DeadLetter, DeadLetterSink, Reason
from stream.metrics import StreamMetrics
from stream.sinks.base import Store

log = logging.getLogger(__name__)


class StoreWriter:
    def __init__(
        self,
        store: Store,
        metrics: StreamMetrics,
        deadletters: DeadLetterSink,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store, self.metrics, self.deadletters = store, metrics, deadletters
        self.retry_initial_s, self.retry_max_s, self.sleep = retry_initial_s, retry_max_s, sleep

    async def write(self, articles: Sequence[ScoredArticle]) -> list[ScoredArticle]:
        """Store every article; returns the ones that were new to the store."""
        by_id = {a.id: a for a in articles}  # a batch may carry one article twice
        pending, created, backoff = list(by_id.values()), set(), None
        while pending:
            try:
                result = await asyncio.to_thread(self.store.index, pending)
            except Exception as exc:
                result, error = None, exc
            else:
                error = None
                created.update(result.created)
                self.metrics.observe_indexed(
                    [by_id[i] for i in (*result.created, *result.updated)], utcnow()
                )
                for article_id, why in result.rejected.items():
                    await self._reject(by_id[article_id], why)
                pending = result.retry
            if error is not None or pending:
                self.metrics.store_errors.labels(self.store.name).inc()
                backoff = backoff or Backoff(self.retry_initial_s, self.retry_max_s)
                delay = backoff.next()
                log.warning(
                    "%s store: %d articles not stored (%s); retrying in %.1fs",
                    self.store.name, len(pending), error or "transient errors", delay,
                )  # fmt: skip
                await self.sleep(delay)
        return [a for a in by_id.values() if a.id in created]

    async def _reject(self, article: ScoredArticle, why: str) -> None:
        await self.deadletters.put(DeadLetter(Reason.STORE_REJECTED, why, encode(article)))
