"""Workers against the real local Kafka and Elasticsearch, scoring with a real tiny model.

Each test gets its own :class:`~tools.stream.sandbox.Sandbox` (topics, consumer group, index).
Workers are subprocesses (``python -m stream.worker``) so they can be SIGKILLed like a
crashed machine. The machine is shared and loaded: every wait polls, with generous bounds.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kafka import KafkaConsumer

from app.settings import Settings
from finpulse.contracts import Article
from tools.stream.sandbox import Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
STARTUP_S = 240  # a worker imports TensorFlow and joins the group; slow on a busy machine
WORDS = ["shares plunge on loss", "stock beat strong growth", "market flat today", "weak report"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory, kafka_bootstrap, elasticsearch_url) -> Settings:
    from tools.model.tiny import tiny_settings, train_tiny_model

    root = tmp_path_factory.mktemp("models")
    train_tiny_model(root)
    return Settings(
        kafka={"bootstrap_servers": kafka_bootstrap, "partitions": PARTITIONS},
        elasticsearch={"url": elasticsearch_url},
        model=tiny_settings(root).model_dump(),
        stream={"batch_size": 32, "batch_within_s": 0.2, "store_retry_initial_s": 0.2},
    )


@pytest.fixture
def box(tmp_path, settings):
    sandbox = Sandbox(settings, tmp_path, prefix="it")
    yield sandbox
    sandbox.close()


def articles(n: int, tag: str) -> list[Article]:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    return [
        Article.create(
            source=f"src{i % 3}",
            guid=f"{tag}-{i}",
            title=f"Acme {WORDS[i % 4]} {i}",
            published_at=t0 + timedelta(seconds=i),
            tickers=["ACME"] if i % 2 else [],
        )
        for i in range(n)
    ]


def metric_samples(port: int, name: str) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name)
    }


def assert_exactly(box: Sandbox, batch: list[Article]) -> None:
    """Every produced article is in the index once: count == distinct ids == produced."""
    ids = box.ids()
    assert box.count() == len(ids) == len(set(ids)) == len(batch)
    assert set(ids) == {a.id for a in batch}


def test_articles_end_up_scored_in_elasticsearch_exactly_once(box):
    batch = articles(300, "once")
    box.produce(batch[:200])
    box.start_worker(18061)
    box.produce(batch[100:])  # 100 re-sent, as an at-least-once producer may
    box.wait_count(300, STARTUP_S)
    assert_exactly(box, batch)
    doc = box.store.get(batch[0].id)
    assert doc.model_version and doc.sentiment in ("negative", "neutral", "positive")
    box.wait_for(
        lambda: sum(metric_samples(18061, "finpulse_articles_scored_total").values()) >= 400,
        60,
        "every delivery scored",
    )  # the 100 re-sent were scored again; the store kept one of each


def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(box):
    batch = articles(1500, "kill")
    box.produce(batch)
    first = box.start_worker(18062)
    box.wait_count(100, STARTUP_S)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    at_kill = box.count()
    assert at_kill < len(batch), "the worker finished before it could be killed; raise N"
    box.start_worker(18062)
    box.wait_count(len(batch), STARTUP_S + 120)
    assert_exactly(box, batch)


def test_malformed_messages_land_in_the_deadletter_topic(box):
    good = articles(20, "dl")
    bad = [b"{not json", b'{"id": "x", "source": "s"}']
    box.produce(good[:10], raw=bad)
    box.produce(good[10:])  # behind the bad ones: the worker must keep going
    box.start_worker(18063)
    box.wait_count(20, STARTUP_S)
    consumer = KafkaConsumer(
        box.settings.kafka.deadletter_topic,
        bootstrap_servers=box.settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2_000,
    )
    letters: dict[bytes, dict[str, bytes]] = {}
    deadline = time.monotonic() + 60
    try:
        while len(letters) < len(bad) and time.monotonic() < deadline:
            letters.update({m.value: dict(m.headers) for m in consumer})
    finally:
        consumer.close()
    assert set(letters) == set(bad)  # the original bytes, as they were
    assert letters[bad[0]]["finpulse.deadletter.reason"] == b"malformed"
    assert letters[bad[1]]["finpulse.deadletter.reason"] == b"invalid"
    for headers in letters.values():
        assert headers["finpulse.deadletter.topic"] == box.settings.kafka.raw_topic.encode()
        assert headers["finpulse.deadletter.error"]
    assert_exactly(box, good)


def test_a_second_worker_joins_mid_stream_and_they_split_the_partitions(box):
    ports = (18064, 18065)
    raw = box.settings.kafka.raw_topic

    def owned() -> list[set[str]]:
        try:
            lag = [metric_samples(p, "finpulse_consumer_lag") for p in ports]
        except httpx.HTTPError:
            return [set(), set()]
        return [{k for k in samples if f'topic="{raw}"' in k} for samples in lag]

    def split() -> bool:
        mine = owned()
        return all(mine) and not mine[0] & mine[1] and len(mine[0] | mine[1]) == PARTITIONS

    batch = articles(1200, "split")
    box.start_worker(ports[0])
    box.produce(batch[:100])
    box.wait_count(100, STARTUP_S)
    # The rest trickles in while the second worker starts, so the group rebalances mid-stream.
    feeding = threading.Thread(target=box.produce, args=(batch[100:1000],), kwargs={"rate": 20})
    feeding.start()
    box.start_worker(ports[1])
    box.wait_for(split, STARTUP_S, "both workers owning raw partitions")
    feeding.join()
    box.produce(batch[1000:])  # some for each worker after the split
    box.wait_count(len(batch), STARTUP_S)
    assert_exactly(box, batch)
    box.wait_for(split, 60, "the partitions still split")
    for port in ports:
        assert sum(metric_samples(port, "finpulse_articles_scored_total").values()) > 0
