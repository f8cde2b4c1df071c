"""The Kafka driver: three Faust agents around the plain-Python core.

1. ``score``: ``news.raw`` → batches (``take_events``) → :class:`BatchScorer` in a thread →
   one ``ScoredArticle`` per article on ``news.scored``, keyed by article id.
2. ``index``: ``news.scored`` → batches → store (idempotent by id, retried through outages) →
   per-batch rate deltas of the articles new to the store, re-keyed by (scope, key) onto the
   scope topic, so every key's counts live on one partition.
3. ``rates``: the scope topic, one event at a time (Faust tables cannot be written inside
   ``take()`` batches) → the key's running windows in a changelogged table → ``news.rates``
   and, when an alert engine is given, alerting in-process.

At least once: a batch is acked only after its outputs are delivered (or its articles
stored), and acks are what Faust commits. Undecodable messages go to ``news.deadletter``
with the reason in headers and the original bytes as the value; the agents keep running.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors

from finpulse.contracts import Article, RateWindow, ScoredArticle, encode
from finpulse.settings import Settings
from stream.aggregate import KeyWindows, RateCounter, scope_partition_key
from stream.alerting import TICK_EVERY_S, Alerting
from stream.deadletter import DeadLetter, Reason, decode_or_deadletter
from stream.metrics import StreamMetrics
from stream.scoring import BatchScorer
from stream.sinks.base import Store
from stream.writer import StoreWriter

log = logging.getLogger(__name__)
LAG_EVERY_S = 5.0


@dataclass
class StreamApp:
    """The Faust app and its topics and agents (tests patch the topics' ``send``)."""

    app: faust.App
    raw: faust.TopicT
    scored: faust.TopicT
    scope: faust.TopicT
    rates: faust.TopicT
    deadletter: faust.TopicT
    score: Any
    index: Any
    aggregate: Any


def create_app(
    settings: Settings,
    scorer: BatchScorer,
    store: Store,
    metrics: StreamMetrics,
    *,
    alerts: Alerting | None = None,
    web_enabled: bool = True,
) -> StreamApp:
    k, s = settings.kafka, settings.stream
    app = faust.App(
        s.app_id,
        broker=[f"kafka://{hp.strip()}" for hp in k.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        broker_request_timeout=max(k.request_timeout_s, 30.0),
        broker_session_timeout=min(k.request_timeout_s, 30.0),
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        store="memory://",
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=web_enabled,
        web_bind=settings.metrics.host,
        web_host=settings.metrics.host,
        web_port=settings.metrics.port,
        autodiscover=False,
    )
    if web_enabled:
        setup_prometheus_sensors(app, registry=metrics.registry, name_prefix="finpulse_faust")

    def topic(name: str) -> faust.TopicT:
        # internal=True: Faust creates the topic with our partition count if it is missing.
        return app.topic(name, partitions=k.partitions, internal=True)

    raw, scored, scope = topic(k.raw_topic), topic(k.scored_topic), topic(s.scope_topic)
    rates, deadletter = topic(k.rates_topic), topic(k.deadletter_topic)
    windows = app.Table(
        "rate-windows",
        partitions=k.partitions,
        key_type=str,
        value_type=dict,  # both json on the changelog
    )
    counter = RateCounter(s.window_s, s.evidence_size, s.lateness_s)
    writer = StoreWriter(
        store, metrics, _TopicDeadLetters(deadletter),
        retry_initial_s=s.store_retry_initial_s, retry_max_s=s.store_retry_max_s,
    )  # fmt: skip

    async def dead(letter: DeadLetter) -> Awaitable[Any]:
        metrics.deadletters.labels(letter.reason.value).inc()
        log.warning("dead letter (%s): %s", letter.reason.value, letter.error)
        return await deadletter.send(
            key=letter.key, value=letter.original, headers=letter.headers()
        )

    async def decoded(model: type[Any], events: Sequence[faust.EventT]) -> tuple[list, list]:
        """Messages that decode, plus the delivery futures of the dead letters of the rest."""
        good, pending = [], []
        for ev in events:
            m = ev.message
            value, letter = decode_or_deadletter(
                model, ev.value, topic=m.topic, partition=m.partition, offset=m.offset, key=ev.key
            )
            if letter is not None:
                pending.append(await dead(letter))
            else:
                good.append(value)
        return good, pending

    @app.agent(raw)
    async def score(stream: faust.StreamT) -> None:
        async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
            async with _unacked_on_cancel(events):
                articles, pending = await decoded(Article, events)
                result = await asyncio.to_thread(scorer.score, articles)
                for article, error in result.failed:
                    letter = DeadLetter(Reason.SCORING_FAILED, error, encode(article), k.raw_topic)
                    pending.append(await dead(letter))
                for a in result.scored:
                    pending.append(await scored.send(key=a.id.encode(), value=encode(a)))
                await asyncio.gather(*pending)

    @app.agent(scored)
    async def index(stream: faust.StreamT) -> None:
        async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
            async with _unacked_on_cancel(events):
                articles, pending = await decoded(ScoredArticle, events)
                new = await writer.write(articles)
                before = counter.late
                for delta in counter.count(new):
                    key = scope_partition_key(delta).encode()
                    pending.append(await scope.send(key=key, value=encode(delta)))
                metrics.late.inc(counter.late - before)
                await asyncio.gather(*pending)

    @app.agent(scope)
    async def aggregate(stream: faust.StreamT) -> None:
        async for event in stream.events():
            m = event.message
            delta, letter = decode_or_deadletter(
                RateWindow, event.value, topic=m.topic, partition=m.partition, offset=m.offset
            )
            if letter is not None:
                await dead(letter)
                continue
            key = scope_partition_key(delta)
            state = KeyWindows.from_dict(windows.get(key), s.evidence_size, s.lateness_s)
            window = state.merge(delta)
            windows[key] = state.to_dict()
            await rates.send(key=key.encode(), value=encode(window))
            if alerts is not None:
                await alerts.process([window])

    if alerts is not None:

        @app.timer(TICK_EVERY_S)
        async def alert_tick() -> None:
            await alerts.tick()

    reported: set[tuple[str, str]] = set()

    @app.timer(LAG_EVERY_S)
    async def consumer_lag() -> None:
        consumer = app.consumer
        committed = getattr(consumer, "_committed_offset", {})
        now: set[tuple[str, str]] = set()
        for tp in consumer.assignment():
            done = committed.get(tp)
            if done is None:
                done = await consumer.position(tp) or 0
            labels = (tp.topic, str(tp.partition))
            metrics.consumer_lag.labels(*labels).set(max(0, consumer.highwater(tp) - done))
            now.add(labels)
        for labels in reported - now:  # revoked by a rebalance: not ours to report any more
            metrics.consumer_lag.remove(*labels)
        reported.clear()
        reported.update(now)

    return StreamApp(app, raw, scored, scope, rates, deadletter, score, index, aggregate)


class _TopicDeadLetters:
    """Dead letters of the store writer, onto the dead-letter topic."""

    def __init__(self, topic: faust.TopicT) -> None:
        self.topic = topic

    async def put(self, letter: DeadLetter) -> None:
        await (await self.topic.send(value=letter.original, headers=letter.headers()))


class _unacked_on_cancel:
    """Keep a batch interrupted by shutdown from being committed.

    ``take_events`` acks a batch in its ``finally`` even when the agent is cancelled
    mid-batch; marking the messages acked first hides them from the consumer's commit
    bookkeeping, so the batch is redelivered instead of lost.
    """

    def __init__(self, events: Sequence[faust.EventT]) -> None:
        self.events = events

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        if exc_type is not None:
            for ev in self.events:
                ev.message.acked = True
        return False


def _credentials(settings: Settings) -> Any:
    k = settings.kafka
    if k.security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context() if k.security_protocol.endswith("SSL") else None
    if k.security_protocol.startswith("SASL"):
        password = k.sasl_password.get_secret_value() if k.sasl_password else None
        return faust.SASLCredentials(
            username=k.sasl_username,
            password=password,
            mechanism=k.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    return faust.SSLCredentials(context)
