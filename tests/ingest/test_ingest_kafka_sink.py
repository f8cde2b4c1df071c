"""KafkaSink's bounded waits and spool, with a producer double (the real broker's outage is in
``tools/stream/faults.py``'s ``broker_restart_under_replay``, run by tests/stream)."""

import asyncio
import time

from prometheus_client import CollectorRegistry

from finpulse.config import KafkaSettings
from finpulse.contracts import Article, decode
from ingest.sinks.kafka_sink import KafkaSink


class Never:
    """A kafka-python future that never resolves: what a broker restart has left behind."""

    def add_callback(self, fn):
        return self

    def add_errback(self, fn):
        return self


class Done(Never):
    def add_callback(self, fn):
        fn(None)
        return self


class Producer:
    """Hangs every send while ``down``; delivers at once otherwise."""

    def __init__(self, **_):
        self.down, self.sent = True, []

    def send(self, topic, key, value):
        if self.down:
            return Never()
        self.sent.append(key)
        return Done()

    def partitions_for(self, topic):
        return {0}

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        pass


def article(i):
    return Article.create(source="t", guid=str(i), title=f"story {i}",
                          published_at="2026-01-01T00:00:00Z")  # fmt: skip


KAFKA = KafkaSettings(request_timeout_s=0.2)


def make_sink(tmp_path, factory, **kw):
    """A sink on a producer double: 0.2 s request timeout, quick retries, no topic admin."""
    return KafkaSink(KAFKA, spool_path=tmp_path / "spool.jsonl", retry_backoff_s=0.01,
                     create_topic=False, registry=CollectorRegistry(), producer_factory=factory,
                     **kw)  # fmt: skip


def test_a_delivery_that_never_resolves_times_out_spools_and_trips_the_circuit(tmp_path):
    spool = tmp_path / "spool.jsonl"
    producer = Producer()

    async def run():
        sink = make_sink(tmp_path, lambda **_: producer, delivery_retries=1, probe_every_s=3600)
        async with sink:
            start = time.monotonic()
            await sink.send(article(0))  # two attempts, each bounded
            first = time.monotonic() - start
            for i in range(1, 50):  # the broker is down: straight to the spool
                await sink.send(article(i))
            rest = time.monotonic() - start - first
        return sink, first, rest

    sink, first, rest = asyncio.run(run())
    assert first < 2 * (KAFKA.request_timeout_s + 0.02 + 2.0) + 1
    assert rest < 1.0
    assert sink.spooled == 50 and sink.delivered == 0
    assert [decode(Article, line).id for line in spool.read_bytes().splitlines()] == [
        article(i).id for i in range(50)
    ]


def test_the_spool_is_sent_first_on_the_next_start_and_a_probe_closes_the_circuit(tmp_path):
    producer = Producer()

    async def run():
        sink = make_sink(tmp_path, lambda **_: producer, delivery_retries=0, probe_every_s=0)
        async with sink:
            await sink.send(article(0))
            assert sink.down_since is not None
            producer.down = False
            await sink.send(article(1))  # the probe gets through
            assert sink.down_since is None
        async with sink:  # the next run drains the spool before anything else
            pass
        return sink

    assert asyncio.run(run()).delivered == 2
    assert producer.sent == [article(i).id.encode() for i in (1, 0)]
    assert not (tmp_path / "spool.jsonl").exists()


def test_a_producer_stuck_after_a_broker_restart_is_replaced_and_delivers(tmp_path):
    """The first producer never resolves a send again (as kafka-python's did after a broker
    restart); the retry gets a fresh one and the article is delivered, not spooled."""
    made = []

    def factory(**_):
        made.append(Producer())
        made[-1].down = len(made) == 1
        return made[-1]

    async def run():
        sink = make_sink(tmp_path, factory, delivery_retries=2)
        async with sink:
            await sink.send(article(0))
        return sink

    sink = asyncio.run(run())
    assert (sink.delivered, sink.spooled, len(made)) == (1, 0, 2)
    assert made[1].sent == [article(0).id.encode()]


def test_the_producer_lingers_kafka_producer_linger_s_like_the_worker(tmp_path):
    seen = {}

    def factory(**cfg):
        seen.update(cfg)
        return Producer()

    sink = KafkaSink(KafkaSettings(producer_linger_s=0.025), create_topic=False,
                     spool_path=tmp_path / "s.jsonl", registry=CollectorRegistry(),
                     producer_factory=factory)  # fmt: skip
    sink._new_producer()
    assert seen["linger_ms"] == 25
    assert sink.delivery_timeout_s == 30.0 + 0.025 + 1.0
