"""Kafka sink (kafka-python): idempotent producer keyed by article id, JSON values.

kafka-python retries inside ``delivery_timeout``; if it still fails, the article is sent
again up to ``delivery_retries`` times and then appended to a local spool file, which is
re-sent on the next start. Every failed attempt counts in
``finpulse_producer_delivery_failures_total``; nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from finpulse.contracts import Article, ContractError, decode, encode
from ingest.sinks.base import DeliveryError, Sink

if TYPE_CHECKING:
    from finpulse.settings import KafkaSettings

log = logging.getLogger(__name__)


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection settings shared by the producer and the admin client."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": int(kafka.request_timeout_s * 1000),
        "client_id": "finpulse-ingest",
    }
    if kafka.sasl_mechanism:
        cfg["sasl_mechanism"] = kafka.sasl_mechanism
        cfg["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            cfg["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return cfg


def ensure_topic(kafka: KafkaSettings, topic: str) -> bool:
    """Create ``topic`` with the configured partitions if missing; True if it was created."""
    admin = KafkaAdminClient(**client_config(kafka))
    try:
        if topic in admin.list_topics():
            return False
        try:
            admin.create_topics(
                [NewTopic(topic, kafka.partitions, kafka.replication_factor)],
                timeout_ms=int(kafka.request_timeout_s * 1000),
            )
        except TopicAlreadyExistsError:  # created by someone else meanwhile
            return False
        log.info("created topic %s (%d partitions)", topic, kafka.partitions)
        return True
    finally:
        admin.close()


class KafkaSink(Sink):
    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        topic: str | None = None,
        spool_path: Path = Path("var/ingest-spool.jsonl"),
        linger_ms: int = 20,
        delivery_retries: int = 3,
        retry_backoff_s: float = 0.5,
        create_topic: bool = True,
        registry: CollectorRegistry = REGISTRY,
        producer_factory: Callable[..., Any] = KafkaProducer,
    ) -> None:
        self.kafka, self.topic = kafka, topic or kafka.raw_topic
        self.spool_path, self.linger_ms = Path(spool_path), linger_ms
        self.delivery_retries, self.retry_backoff_s = delivery_retries, retry_backoff_s
        self.create_topic, self._factory = create_topic, producer_factory
        self.failures = Counter(
            "finpulse_producer_delivery_failures",
            "Kafka deliveries that failed (each failed attempt; retried, then spooled)",
            registry=registry,
        )
        self.delivered = self.spooled = 0
        self._producer: Any = None

    async def start(self) -> None:
        if self.create_topic:
            await asyncio.to_thread(ensure_topic, self.kafka, self.topic)
        timeout_ms = int(self.kafka.request_timeout_s * 1000)
        self._producer = await asyncio.to_thread(
            self._factory,
            **client_config(self.kafka),
            acks="all",
            enable_idempotence=True,
            retries=5,
            max_in_flight_requests_per_connection=5,
            linger_ms=self.linger_ms,
            max_block_ms=timeout_ms,
            delivery_timeout_ms=timeout_ms + self.linger_ms + 1000,
        )
        # Block (bounded by max_block_ms) until the topic's metadata is known: a topic created
        # a moment ago may have no leader yet, and sends would burn their delivery timeout.
        await asyncio.to_thread(self._producer.partitions_for, self.topic)
        await self._drain_spool()

    async def send(self, article: Article) -> None:
        if self._producer is None:
            raise DeliveryError("KafkaSink.send before start()")
        for attempt in range(self.delivery_retries + 1):
            try:
                await self._produce(article)
                self.delivered += 1
                return
            except Exception as exc:  # KafkaError or a client surprise: retried, then spooled
                self.failures.inc()
                log.warning("delivery of %s failed (attempt %d): %r", article.id, attempt + 1, exc)
                if attempt < self.delivery_retries:
                    await asyncio.sleep(random.uniform(0, self.retry_backoff_s * 2**attempt))
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
        log.error("spooled undeliverable article %s to %s", article.id, self.spool_path)

    async def _drain_spool(self) -> None:
        """Re-send articles spooled by an earlier run; whatever fails again is spooled again."""
        if not self.spool_path.is_file():
            return
        draining = self.spool_path.with_suffix(self.spool_path.suffix + ".draining")
        self.spool_path.replace(draining)
        lines = draining.read_bytes().splitlines()
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
            timeout = self.kafka.request_timeout_s
            await asyncio.to_thread(producer.flush, timeout)
            await asyncio.to_thread(producer.close, timeout)
