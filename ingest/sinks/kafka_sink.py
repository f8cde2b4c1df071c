"""Kafka sink (kafka-python): idempotent producer keyed by article id, JSON values.

kafka-python retries inside ``delivery_timeout``; if it still fails, the article is sent
again up to ``delivery_retries`` times and then appended to a local spool file, which is
re-sent on the next start. Every failed attempt counts in
``finpulse_producer_delivery_failures_total``; nothing is dropped silently.

Every wait is bounded: a delivery that the client never resolves (seen after a broker
restart) times out like a failed one. Once an article had to be spooled the broker counts as
down: the next articles go straight to the spool, and one real attempt is made every
``probe_every_s``, so an outage costs seconds per probe instead of minutes per article, and
a replay ends (non-zero, saying where its articles are) instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from finpulse.contracts import Article, ContractError, decode, encode
from finpulse.retry import backoff_s
from ingest.sinks.base import DeliveryError, Sink

if TYPE_CHECKING:
    from finpulse.config import KafkaSettings

log = logging.getLogger(__name__)


CLIENT_ID = "finpulse-ingest"


class KafkaUnavailable(DeliveryError):
    """The broker cannot be reached to start producing; nothing was sent."""


def ensure_topic(kafka: KafkaSettings, topic: str) -> bool:
    """Create ``topic`` with the configured partitions if missing; True if it was created."""
    return bool(ensure_topics(kafka, {topic: kafka.partitions}))


def ensure_topics(kafka: KafkaSettings, topics: dict[str, int]) -> list[str]:
    """Create the missing ones of ``topics`` (name → partitions) and wait until the broker's
    metadata lists every partition with a leader; returns the names created.

    A consumer group that joins before its topics are in the metadata is assigned none of
    their partitions, and finds them only at its next metadata refresh (five minutes by
    default): creating them first is what makes a fresh deployment start at once.
    """
    timeout_s = kafka.request_timeout_s
    admin = KafkaAdminClient(**kafka.client_config(CLIENT_ID))
    try:
        missing = [t for t in topics if t not in set(admin.list_topics())]
        created = []
        for topic in missing:
            try:
                admin.create_topics(
                    [NewTopic(topic, topics[topic], kafka.replication_factor)],
                    timeout_ms=int(timeout_s * 1000),
                )
                created.append(topic)
                log.info("created topic %s (%d partitions)", topic, topics[topic])
            except TopicAlreadyExistsError:  # created by someone else meanwhile
                pass
        deadline = time.monotonic() + timeout_s
        while waiting := _without_leaders(admin, list(topics)):
            if time.monotonic() > deadline:
                raise KafkaError(f"topics {waiting} have no leader after {timeout_s:.0f}s")
            time.sleep(0.2)
        return created
    finally:
        admin.close()


def _without_leaders(admin: KafkaAdminClient, topics: list[str]) -> list[str]:
    meta = admin.describe_topics(topics)
    ready = {
        t["name"]
        for t in meta
        if not t["error_code"] and t["partitions"]
        and all(p["leader_id"] >= 0 for p in t["partitions"])
    }  # fmt: skip
    return [t for t in topics if t not in ready]


class KafkaSink(Sink):
    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        topic: str | None = None,
        spool_path: Path = Path("var/ingest-spool.jsonl"),
        delivery_retries: int = 3,
        retry_backoff_s: float = 0.5,
        probe_every_s: float = 30.0,
        create_topic: bool = True,
        registry: CollectorRegistry = REGISTRY,
        producer_factory: Callable[..., Any] = KafkaProducer,
    ) -> None:
        self.kafka, self.topic = kafka, topic or kafka.raw_topic
        self.spool_path = Path(spool_path)
        self.delivery_retries, self.retry_backoff_s = delivery_retries, retry_backoff_s
        self.create_topic, self._factory = create_topic, producer_factory
        self.failures = Counter(
            "finpulse_producer_delivery_failures",
            "Kafka deliveries that failed (each failed attempt; retried, then spooled)",
            registry=registry,
        )
        self.probe_every_s = probe_every_s
        self.delivered = self.spooled = 0
        self.down_since: float | None = None  # monotonic time the broker was found down
        self._last_try = 0.0
        self._stale = False  # a delivery timed out: the producer may be stuck
        self._producer: Any = None

    @property
    def delivery_timeout_s(self) -> float:
        return self.kafka.request_timeout_s + self.kafka.producer_linger_s + 1.0

    async def start(self) -> None:
        try:
            await self._connect()
        except KafkaError as exc:
            raise KafkaUnavailable(
                f"Kafka at {self.kafka.bootstrap_servers} is unreachable ({exc!r}); nothing "
                "was sent"
            ) from None
        await self._drain_spool()

    async def _connect(self) -> None:
        if self.create_topic:
            await asyncio.to_thread(ensure_topic, self.kafka, self.topic)
        self._producer = await asyncio.to_thread(self._new_producer)
        # Block (bounded by max_block_ms) until the topic's metadata is known: a topic created
        # a moment ago may have no leader yet, and sends would burn their delivery timeout.
        await asyncio.to_thread(self._producer.partitions_for, self.topic)

    def _new_producer(self) -> Any:
        return self._factory(
            **self.kafka.client_config(CLIENT_ID),
            acks="all",
            enable_idempotence=True,
            retries=5,
            max_in_flight_requests_per_connection=5,
            linger_ms=round(self.kafka.producer_linger_s * 1000),
            max_block_ms=int(self.kafka.request_timeout_s * 1000),
            delivery_timeout_ms=int(self.delivery_timeout_s * 1000) - 1000,
        )

    async def _replace_producer(self) -> None:
        """A fresh producer after a delivery timed out. After a broker restart kafka-python's
        idempotent producer was seen to never resolve a send again (every later delivery
        timed out although the broker was back): the old one is dropped unflushed, as all
        it still holds has been spooled."""
        old, self._producer = self._producer, await asyncio.to_thread(self._new_producer)
        self._stale = False
        await asyncio.to_thread(_close, old, 0)

    async def send(self, article: Article) -> None:
        if self._producer is None:
            raise DeliveryError("KafkaSink.send before start()")
        loop = asyncio.get_running_loop()
        probing = self.down_since is not None
        if probing and loop.time() - self._last_try < self.probe_every_s:
            self._spool(article)  # the broker is down: no need to wait for it to say so again
            return
        attempts = 1 if probing else self.delivery_retries + 1
        for attempt in range(attempts):
            self._last_try = loop.time()
            try:
                if self._stale:
                    await self._replace_producer()
                await self._produce(article)
            except Exception as exc:  # KafkaError, a timeout or a client surprise: retried
                self.failures.inc()
                self._stale = self._stale or isinstance(exc, (TimeoutError, KafkaTimeoutError))
                log.warning("delivery of %s failed (attempt %d): %r", article.id, attempt + 1, exc)
                if attempt + 1 < attempts:
                    await asyncio.sleep(backoff_s(attempt, self.retry_backoff_s, jitter=1.0))
                continue
            self.delivered += 1
            if probing:
                log.warning("Kafka is back after %.0fs", loop.time() - (self.down_since or 0))
                self.down_since = None
            return
        if self.down_since is None:
            self.down_since = loop.time()
            log.error("Kafka at %s is not taking articles; spooling to %s, trying again every "
                      "%.0fs", self.kafka.bootstrap_servers, self.spool_path,
                      self.probe_every_s)  # fmt: skip
        self._spool(article)

    async def _produce(self, article: Article) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def ok(_: object) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        def failed(exc: BaseException) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_exception(exc))

        future = await asyncio.to_thread(
            self._producer.send, self.topic, key=article.id.encode(), value=encode(article)
        )
        future.add_callback(ok)
        future.add_errback(failed)
        # The client's own delivery timeout should resolve the future; after a broker restart
        # it has been seen not to, and an unbounded await would hang the crawl forever.
        async with asyncio.timeout(self.delivery_timeout_s + 1.0):
            await done

    def _spool(self, article: Article) -> None:
        """Keep an undeliverable article on disk; raise if even that fails."""
        try:
            self.spool_path.parent.mkdir(parents=True, exist_ok=True)
            with self.spool_path.open("ab") as fh:
                fh.write(encode(article) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise DeliveryError(f"cannot deliver or spool {article.id}: {exc}") from exc
        self.spooled += 1
        log.debug("spooled undeliverable article %s to %s", article.id, self.spool_path)

    async def _drain_spool(self) -> None:
        """Re-send articles spooled by an earlier run; whatever fails again is spooled again."""
        draining = self.spool_path.with_suffix(self.spool_path.suffix + ".draining")
        if self.spool_path.is_file():
            if draining.is_file():  # an earlier drain was interrupted: keep both
                with draining.open("ab") as fh:
                    fh.write(self.spool_path.read_bytes())
                self.spool_path.unlink()
            else:
                self.spool_path.replace(draining)
        if not draining.is_file():
            return
        lines = [line for line in draining.read_bytes().splitlines() if line.strip()]
        log.info("re-sending %d spooled articles from %s", len(lines), self.spool_path)
        for line in lines:
            try:
                article = decode(Article, line)
            except ContractError as exc:
                corrupt = self.spool_path.with_suffix(self.spool_path.suffix + ".corrupt")
                with corrupt.open("ab") as fh:
                    fh.write(line + b"\n")
                log.error("unreadable spool line moved to %s: %s", corrupt, exc)
                continue
            await self.send(article)
        draining.unlink()

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            # Whatever is not delivered within the timeout was spooled when its wait ran out.
            await asyncio.to_thread(_close, producer, self.kafka.request_timeout_s)


def _close(producer: Any, timeout: float) -> None:
    """Close a producer within ``timeout``, delivered or not.

    kafka-python's ``close`` gives up with ``KafkaTimeoutError`` when its flush times out,
    before it stops its I/O thread: the thread keeps running and the producer's ``__del__``
    prints a traceback later. Stop the thread here instead (the undelivered articles are
    spooled already: each send's wait is bounded).
    """
    try:
        producer.close(timeout)
    except KafkaError as exc:
        log.warning("Kafka producer closed with deliveries pending (they are spooled): %r", exc)
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
        producer._closed = True
