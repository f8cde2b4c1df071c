"""The Kafka driver: Faust agents around the plain-Python core (``stream/pipeline.py``).

Workers (:func:`create_app`), as many as there are partitions:

1. ``score``: ``news.raw`` → batches (``take_events``) → :class:`BatchScorer` in a thread →
   one ``ScoredArticle`` per article on ``news.scored``, keyed by article id. Its actors
   (``score_concurrency``) share the messages, so the model's thread pool does not wait
   while a batch is decoded or its results delivered (see ``StreamSettings``).
2. ``index``: ``news.scored`` → batches → store (idempotent by id, retried through outages) →
   per-batch rate deltas of the articles new to the store → ``news.rates``.

The alerter (:func:`create_alerter_app`), exactly one: ``news.rates`` has one partition, so
one process folds every key's deltas into running windows and runs the one alert engine.
Keys never move between processes, so no open alert is forgotten or paged twice after a
rebalance, and the workers keep no state at all (no Faust tables, no recovery).

At least once: a batch is acked only after its outputs are delivered (or its articles
stored), and acks are what Faust commits. Undecodable messages go to ``news.deadletter``
with the reason in headers and the original bytes as the value; the agents keep running.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faust
from aiokafka.errors import IllegalStateError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from finpulse.contracts import RateWindow, encode
from stream.aggregate import RateCounter, scope_partition_key
from stream.alerting import Alerting
from stream.deadletter import DeadLetter, Reason
from stream.metrics import StreamMetrics
from stream.pipeline import DeadLetters, Message, Pipeline, RunningWindows, decode
from stream.scoring import BatchScorer
from stream.sinks.base import Store

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger(__name__)
LAG_EVERY_S = 5.0


@dataclass
class StreamApp:
    """The Faust app and its topics and agents (tests patch the topics' ``send``)."""

    app: faust.App
    raw: faust.TopicT
    scored: faust.TopicT
    rates: faust.TopicT
    deadletter: faust.TopicT
    score: Any
    index: Any


def _faust_app(
    settings: Settings, app_id: str, registry: CollectorRegistry, *, web_enabled: bool, port: int
) -> faust.App:
    k = settings.kafka
    kafka = k.client_config(app_id)
    timeout_s = kafka["request_timeout_ms"] / 1000
    datadir = settings.stream.faust_dir / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    app = faust.App(
        app_id,
        broker=[f"kafka://{hp}" for hp in kafka["bootstrap_servers"]],
        broker_credentials=_credentials(kafka),
        broker_request_timeout=max(timeout_s, 30.0),
        broker_session_timeout=min(timeout_s, 30.0),
        producer_linger=k.producer_linger_s,
        # New topics and partitions are found within this, not Faust's default 5 minutes.
        consumer_metadata_max_age_ms=30_000,
        processing_guarantee="at_least_once",
        # Do not wait for in-flight batches on shutdown or rebalance: one held up by a store
        # outage never finishes, so SIGTERM was ignored for minutes and a rebalance stalled.
        # Unacked batches are not committed; their next owner redoes them (writes are
        # idempotent by id, and rates count only what is new to the store).
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        store="memory://",
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=web_enabled,
        web_bind=settings.metrics.host,
        web_host=settings.metrics.host,
        web_port=port,
        autodiscover=False,
        datadir=str(datadir),
    )
    if web_enabled:
        setup_prometheus_sensors(app, registry=registry, name_prefix="finpulse_faust")

    @app.on_partitions_assigned.connect
    async def forget_read_offsets(sender: faust.App, assigned: set[Any], **_: Any) -> None:
        """Work around a faust-streaming 0.15 race that stalls partitions after a rebalance.

        A rebalance that interrupts the fetch loop leaves it marking the rest of its batch
        as read though none of it was delivered; a partition with no committed offset yet
        keeps that read offset, so the re-fetched messages are dropped as already seen and
        stay uncommitted until a restart (seen as a worker stuck 5 articles short when a
        second worker joined). Forgetting the read offsets of the new assignment lets them
        through; the committed offset still decides where fetching starts.
        """
        for tp in assigned:
            sender.consumer._read_offset.pop(tp, None)

    return app


def _rates_topic(app: faust.App, settings: Settings) -> faust.TopicT:
    """One partition: the single alert engine consumes every key in order."""
    k = settings.kafka
    return app.topic(k.rates_topic, partitions=1, internal=True)


def create_app(
    settings: Settings,
    scorer: BatchScorer,
    store: Store,
    metrics: StreamMetrics,
    *,
    web_enabled: bool = True,
) -> StreamApp:
    k, s = settings.kafka, settings.stream
    app = _faust_app(
        settings, s.app_id, metrics.registry, web_enabled=web_enabled, port=settings.metrics.port
    )

    def topic(name: str) -> faust.TopicT:
        # internal=True: Faust creates the topic with our partition count if it is missing.
        return app.topic(name, partitions=k.partitions, internal=True)

    raw, scored = topic(k.raw_topic), topic(k.scored_topic)
    rates, deadletter = _rates_topic(app, settings), topic(k.deadletter_topic)
    args, limits = s.rate_args(settings.alerts.evidence_size)
    max_bytes = app.conf.producer_max_request_size
    pipeline = Pipeline(
        scorer, store, _TopicDeadLetters(deadletter, max_bytes), metrics,
        counter=RateCounter(*args, **limits),
        retry_initial_s=s.store_retry_initial_s, retry_max_s=s.store_retry_max_s,
    )  # fmt: skip
    send = _sender(pipeline.dead, max_bytes)

    @app.agent(raw, concurrency=s.score_concurrency)
    async def score(stream: faust.StreamT) -> None:
        async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
            async with _unacked_on_cancel(events):
                out = await pipeline.score(_messages(events))
                pending = [await send(scored, a.id.encode(), encode(a), out.originals[a.id])
                           for a in out.articles]  # fmt: skip
                await asyncio.gather(*pending)

    @app.agent(scored)
    async def index(stream: faust.StreamT) -> None:
        async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
            async with _unacked_on_cancel(events):
                out = await pipeline.store(_messages(events))
                pending = []
                for delta in out.deltas:
                    key, value = scope_partition_key(delta).encode(), encode(delta)
                    pending.append(await send(rates, key, value, value))
                await asyncio.gather(*pending)

    _report_consumer_lag(app, metrics)
    return StreamApp(app, raw, scored, rates, deadletter, score, index)


@dataclass
class AlerterApp:
    app: faust.App
    rates: faust.TopicT
    deadletter: faust.TopicT
    alert: Any


def create_alerter_app(
    settings: Settings,
    alerting: Alerting,
    metrics: StreamMetrics,
    *,
    port: int,
    state: Path,
    web_enabled: bool = True,
) -> AlerterApp:
    """The one alert engine of the cluster: ``news.rates`` deltas → running windows → engine.

    Its consumer group (``<app_id>-alerter``) holds the single partition of ``news.rates``,
    so a second alerter only stands by. The windows are saved to ``state`` after every batch
    with the offset they include (:class:`RunningWindows`), so after a crash a redelivered
    delta is skipped, never counted twice.
    """
    k, s = settings.kafka, settings.stream
    app = _faust_app(
        settings, f"{s.app_id}-alerter", metrics.registry, web_enabled=web_enabled, port=port
    )
    rates = _rates_topic(app, settings)
    deadletter = app.topic(k.deadletter_topic, partitions=k.partitions, internal=True)
    dead = DeadLetters(_TopicDeadLetters(deadletter, app.conf.producer_max_request_size), metrics)
    rate_args = s.rate_args(settings.alerts.evidence_size)
    windows = RunningWindows.restore(state, rate_args, alerting, offsets=True)

    @app.agent(rates)
    async def alert(stream: faust.StreamT) -> None:
        async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
            async with _unacked_on_cancel(events):
                fresh = [m for m in _messages(events) if m.offset > windows.offset]
                deltas = [d for d, _ in await decode(RateWindow, fresh, dead)]
                last = max((m.offset for m in fresh), default=None)
                await windows.fold(deltas, offset=last)

    @app.timer(s.alert_tick_s)
    async def alert_tick() -> None:
        # Only the owner of news.rates ticks: a second alerter must not deliver the outbox too.
        if any(tp.topic == k.rates_topic for tp in app.consumer.assignment()):
            await alerting.tick()

    _report_consumer_lag(app, metrics)
    return AlerterApp(app, rates, deadletter, alert)


# Room for a message's headers and the record batch's own framing within the producer's
# max_request_size (a dead letter's headers carry up to 1,000 characters of error).
FRAMING_BYTES = 4096
Send = Callable[[faust.TopicT, bytes, bytes, bytes], Awaitable[Awaitable[Any]]]


def _sender(dead: DeadLetters, max_bytes: int) -> Send:
    """``topic.send`` that dead-letters a message over the producer's size limit instead of
    crashing the agent (``original``: what the letter keeps), so the rest of its batch goes
    through and the batch is committed only once the letter is delivered."""

    async def send(
        topic: faust.TopicT, key: bytes, value: bytes, original: bytes
    ) -> Awaitable[Any]:
        error = None
        if len(key) + len(value) + FRAMING_BYTES > max_bytes:
            error = (f"{len(value)}-byte message for {topic.get_topic_name()} is over the "
                     f"producer's {max_bytes}-byte limit")  # fmt: skip
        else:
            try:
                return await topic.send(key=key, value=value)
            except ProducerSendError as exc:
                # Too large (by the client's own count) can never be sent. Anything else, e.g.
                # no metadata during a broker outage, is no verdict on the message: raised, so
                # the batch stays uncommitted and is redone.
                if not isinstance(exc.__cause__, MessageSizeTooLargeError):
                    raise
                error = f"cannot produce to {topic.get_topic_name()}: {exc}"
        await dead.put(DeadLetter(Reason.UNDELIVERABLE, error, original, key=key))
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    return send


def _messages(events: Sequence[faust.EventT]) -> list[Message]:
    return [Message(ev.value, ev.key, ev.message.topic, ev.message.partition, ev.message.offset)
            for ev in events]  # fmt: skip


def _report_consumer_lag(app: faust.App, metrics: StreamMetrics) -> None:
    reported: set[tuple[str, str]] = set()

    @app.timer(LAG_EVERY_S)
    async def consumer_lag() -> None:
        now = await report_lag(app.consumer, metrics, reported)
        reported.clear()
        reported.update(now)


async def report_lag(
    consumer: Any, metrics: StreamMetrics, reported: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Set ``finpulse_consumer_lag`` for the partitions this worker owns; returns their labels.

    A partition just assigned has no highwater until its first fetch, and one revoked by a
    rebalance that starts mid-report makes the client raise: either is left out until the
    next report (both used to crash the worker's timer, and so the worker, when a rebalance
    fell between two reports or during one).
    """
    committed = getattr(consumer, "_committed_offset", {})
    now: set[tuple[str, str]] = set()
    for tp in consumer.assignment():
        try:
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = committed.get(tp)
            if done is None:
                done = await consumer.position(tp) or 0
        except (AssertionError, IllegalStateError):  # aiokafka's "Partition is not assigned"
            continue
        labels = (tp.topic, str(tp.partition))
        metrics.consumer_lag.labels(*labels).set(max(0, high - done))
        now.add(labels)
    for labels in reported - now:  # revoked by a rebalance (or not fetched yet): not reported
        metrics.consumer_lag.remove(*labels)
    return now


class _TopicDeadLetters:
    """The dead-letter topic as the pipeline's sink: the original bytes as the value (cut to
    what the producer may send), the reason in headers; returns once delivered."""

    def __init__(self, topic: faust.TopicT, max_bytes: int) -> None:
        self.topic, self.max_bytes = topic, max_bytes

    async def put(self, letter: DeadLetter) -> None:
        letter = letter.capped(self.max_bytes - FRAMING_BYTES - len(letter.key or b""))
        headers = letter.headers()
        await (await self.topic.send(key=letter.key, value=letter.original, headers=headers))


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


def _credentials(kafka: dict[str, Any]) -> Any:
    """Faust's form of the security part of ``KafkaSettings.client_config``."""
    protocol = kafka["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context() if protocol.endswith("SSL") else None
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka["sasl_plain_username"],
            password=kafka.get("sasl_plain_password"),
            mechanism=kafka["sasl_mechanism"],
            ssl_context=context,
        )
    return faust.SSLCredentials(context)
