"""The batch step of the stream, written once: decode → score → dead-letter → store → count
→ fold → alert.

Plain Python that knows nothing of Faust or Kafka. A transport (the Faust agents in
``stream/faust_app.py``, the queues of ``stream/embedded.py``) takes a batch, hands it here,
delivers what comes back (scored articles, rate deltas) and commits. Every message the step
cannot use is dead-lettered here with its reason and its bytes as they arrived, so a poison
message fails alone; a step returns only once its dead letters are delivered and its articles
stored, so a transport that commits after it loses nothing.

>>> import asyncio
>>> from prometheus_client import CollectorRegistry
>>> from finpulse.contracts import Article
>>> class Letters:
...     def __init__(self): self.items = []
...     async def put(self, letter): self.items.append(letter)
>>> dead = DeadLetters(Letters(), StreamMetrics(CollectorRegistry()))
>>> batch = [Message(b"{oops", topic="news.raw", offset=3)]
>>> asyncio.run(decode(Article, batch, dead)), dead.count, dead.sink.items[0].reason.value
([], 1, 'malformed')
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from finpulse.contracts import Alert, Article, RateWindow, ScoredArticle, encode
from stream.aggregate import RateAggregator, RateCounter
from stream.alerting import Alerting
from stream.deadletter import DeadLetter, DeadLetterSink, Reason, decode_or_deadletter
from stream.metrics import StreamMetrics
from stream.scoring import BatchScorer
from stream.sinks.base import Store
from stream.state import read_state, write_state
from stream.writer import StoreWriter

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Message:
    """One message as a transport took it: its bytes, and where it came from (for the
    dead letter that names it)."""

    value: bytes | None
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    def where(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                "key": self.key}  # fmt: skip


class DeadLetters:
    """Every dead letter of the stream passes here: counted (``finpulse_deadletter_total`` and
    :attr:`count`), logged, then handed to the transport's sink, which returns once it is
    delivered."""

    def __init__(self, sink: DeadLetterSink, metrics: StreamMetrics) -> None:
        self.sink, self.metrics, self.count = sink, metrics, 0

    async def put(self, letter: DeadLetter) -> None:
        self.count += 1
        self.metrics.deadletters.labels(letter.reason.value).inc()
        log.warning("dead letter (%s): %s", letter.reason.value, letter.error[:300])
        await self.sink.put(letter)

    async def put_all(self, letters: Sequence[DeadLetter]) -> None:
        """Deliver several at once (in order of sending), each failing or not on its own."""
        await asyncio.gather(*(self.put(letter) for letter in letters))


async def decode(
    model: type[M], messages: Sequence[Message], dead: DeadLetters
) -> list[tuple[M, Message]]:
    """The messages that decode, each with its message; the rest are dead-lettered (malformed,
    or invalid naming the field; a newer major of the schema is invalid, a newer minor's
    unknown fields are dropped by ``finpulse.contracts.decode``)."""
    good, letters = [], []
    for m in messages:
        value, letter = decode_or_deadletter(model, m.value, **m.where())
        if letter is not None:
            letters.append(letter)
        else:
            good.append((value, m))
    await dead.put_all(letters)
    return good


@dataclass
class Scored:
    """What a score step gives the transport to deliver."""

    articles: list[ScoredArticle] = field(default_factory=list)
    originals: dict[str, bytes] = field(default_factory=dict)  # id → bytes as they arrived


@dataclass
class Stored:
    """What a store step gives the transport: the articles new to the store and their rate
    deltas (only new ones count, so a redelivery or a replay never inflates a rate)."""

    new: list[ScoredArticle] = field(default_factory=list)
    deltas: list[RateWindow] = field(default_factory=list)


class Pipeline:
    """Scoring and storing one batch at a time, for either transport.

    ``deadletters`` is the transport's sink (a Kafka topic, a JSON-lines file); ``counter``
    counts rate deltas (the embedded runner passes its :class:`RateAggregator`'s, so its saved
    watermark carries on). Store writes are idempotent by id and retried with capped backoff
    through an outage (:class:`StoreWriter`), so :meth:`store` waits out a store that is down.
    """

    def __init__(
        self,
        scorer: BatchScorer,
        store: Store,
        deadletters: DeadLetterSink,
        metrics: StreamMetrics,
        *,
        counter: RateCounter,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.scorer, self.metrics, self.counter = scorer, metrics, counter
        self.dead = DeadLetters(deadletters, metrics)
        self.writer = StoreWriter(
            store, metrics, self.dead, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s
        )

    async def score(self, messages: Sequence[Message]) -> Scored:
        """Raw article messages → scored articles; what does not decode or score is
        dead-lettered with the bytes it arrived as."""
        decoded = await decode(Article, messages, self.dead)
        return await self.score_articles([a for a, _ in decoded], {a.id: m for a, m in decoded})

    async def score_articles(
        self, articles: Sequence[Article], messages: Mapping[str, Message] | None = None
    ) -> Scored:
        """Articles already decoded (``messages``: what each arrived as, by id, if known)."""
        messages = messages or {}
        result = await asyncio.to_thread(self.scorer.score, articles)
        letters = []
        for article, error in result.failed:
            m = messages.get(article.id)
            original = m.value if m is not None and m.value is not None else encode(article)
            where = m.where() if m is not None else {}
            letters.append(DeadLetter(Reason.SCORING_FAILED, error, original, **where))
        await self.dead.put_all(letters)
        originals = {i: m.value for i, m in messages.items() if m.value is not None}
        return Scored(result.scored, originals)

    async def store(self, messages: Sequence[Message]) -> Stored:
        """Scored-article messages → the store; see :meth:`store_articles`."""
        decoded = await decode(ScoredArticle, messages, self.dead)
        return await self.store_articles([a for a, _ in decoded])

    async def store_articles(self, articles: Sequence[ScoredArticle]) -> Stored:
        """Store every article (refused ones dead-lettered) and count the new ones' rates."""
        new = await self.writer.write(articles)
        return Stored(new, self.metrics.count_rates(self.counter, new))


@dataclass
class Folded:
    windows: list[RateWindow]
    alerts: list[Alert]


class RunningWindows:
    """Rate deltas folded into every key's running windows, handed to the alert engine, then
    saved: the alerter's step, and the embedded runner's last one.

    With ``offsets`` (the alerter) the state holds the last offset it includes, so deltas
    redelivered after a crash are skipped (:attr:`offset`); saved only after the engine has the
    windows, a crash in between redelivers them and the engine takes the same running totals
    again without effect. Without (the embedded runner) the state is the windows alone.
    """

    def __init__(
        self,
        rates: RateAggregator,
        alerting: Alerting | None = None,
        state: Path | None = None,
        *,
        offsets: bool = False,
        offset: int = -1,
    ) -> None:
        self.rates, self.alerting, self.state = rates, alerting, state
        self.offsets, self.offset = offsets, offset

    @classmethod
    def restore(
        cls,
        state: Path | None,
        rate_args: tuple[tuple[int, int, int], dict[str, Any]],
        alerting: Alerting | None = None,
        *,
        offsets: bool = False,
    ) -> RunningWindows:
        """The windows saved in ``state`` (none yet: empty); an unreadable file is a
        :class:`~stream.state.StateError`."""
        saved, (args, limits) = read_state(state) or {}, rate_args
        rates = saved.get("rates", {}) if offsets else saved
        folded = RateAggregator.from_dict(rates, *args, **limits)
        return cls(folded, alerting, state, offsets=offsets, offset=saved.get("offset", -1))

    async def fold(self, deltas: Sequence[RateWindow], *, offset: int | None = None) -> Folded:
        """Fold ``deltas`` (and, with offsets, everything up to ``offset``)."""
        windows = self.rates.fold(deltas)
        alerts = await self.alerting.process(windows) if self.alerting is not None else []
        if offset is not None:
            self.offset = max(self.offset, offset)
        if self.state is not None and (deltas or offset is not None):
            await asyncio.to_thread(write_state, self.state, self._saved())
        return Folded(windows, alerts)

    def _saved(self) -> dict[str, Any]:
        if self.offsets:
            return {"offset": self.offset, "rates": self.rates.to_dict()}
        return self.rates.to_dict()
