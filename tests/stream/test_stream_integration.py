"""Workers against the real local Kafka and Elasticsearch, scoring with a real tiny model.

Each test gets its own topics, consumer group and index. Workers run as subprocesses
(``python -m stream.worker``) so they can be SIGKILLed like a crashed machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import tomli_w
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from finpulse.contracts import Article, encode
from finpulse.settings import ElasticsearchSettings
from stream.sinks.elasticsearch import ElasticsearchStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
KAFKA = "127.0.0.1:19092"
PARTITIONS = 4
WORDS = ["shares plunge on loss", "stock beat strong growth", "market flat today", "weak report"]


def _up() -> bool:
    try:
        httpx.get("http://127.0.0.1:19200/_cluster/health", timeout=2).raise_for_status()
        KafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=3000).close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def tiny_registry(tmp_path_factory) -> Path:
    if not _up():
        pytest.fail("Kafka/Elasticsearch are not up: run deploy/local/services.sh up")
    from model.tiny import train_tiny_model

    root = tmp_path_factory.mktemp("models")
    train_tiny_model(root)
    return root


class Pipeline:
    """One isolated deployment: topics, group, index, config file, worker processes."""

    def __init__(self, tmp: Path, registry: Path) -> None:
        uid = uuid.uuid4().hex[:8]
        self.tmp, self.uid = tmp, uid
        self.topics = {
            "raw_topic": f"it-{uid}.raw",
            "scored_topic": f"it-{uid}.scored",
            "deadletter_topic": f"it-{uid}.deadletter",
            "rates_topic": f"it-{uid}.rates",
        }
        self.index = f"finpulse-it-{uid}"
        config = {
            "kafka": {"bootstrap_servers": KAFKA, "partitions": PARTITIONS, **self.topics},
            "elasticsearch": {"index": self.index},
            "store": {"backend": "elasticsearch"},
            "model": {
                "registry_dir": str(registry),
                "base_model": str(registry / ".tiny-base"),
                "max_length": 32,
            },
            "stream": {
                "app_id": f"finpulse-it-{uid}",
                "scope_topic": f"it-{uid}.scope",
                "batch_size": 32,
                "batch_within_s": 0.2,
                "store_retry_initial_s": 0.2,
            },
        }
        self.config = tmp / "finpulse.toml"
        self.config.write_text(tomli_w.dumps(config))
        admin = KafkaAdminClient(bootstrap_servers=KAFKA)
        admin.create_topics(
            [NewTopic(t, PARTITIONS, 1) for t in [*self.topics.values(), f"it-{uid}.scope"]]
        )
        admin.close()
        self.store = ElasticsearchStore(ElasticsearchSettings(), index=self.index)
        self.procs: list[subprocess.Popen] = []
        self.producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=5)

    def start_worker(self, port: int) -> subprocess.Popen:
        log = (self.tmp / f"worker-{port}-{len(self.procs)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.worker", "-c", str(self.config), "--web-port",
             str(port), "--no-alerts", "--loglevel", "warn"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def produce(self, articles: list[Article], raw: list[bytes] = ()) -> None:
        for a in articles:
            self.producer.send(self.topics["raw_topic"], key=a.id.encode(), value=encode(a))
        for value in raw:
            self.producer.send(self.topics["raw_topic"], key=b"bad", value=value)
        self.producer.flush(30)

    def count(self) -> int:
        self.store.refresh()
        return self.store.count()

    def ids(self) -> list[str]:
        self.store.refresh()
        r = self.store.es.search(
            index=self.index, size=10_000, source=False, query={"match_all": {}}
        )
        return [h["_id"] for h in r["hits"]["hits"]]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.producer.close()
        self.store.es.indices.delete(index=self.index, ignore_unavailable=True)
        self.store.close()
        admin = KafkaAdminClient(bootstrap_servers=KAFKA)
        try:
            admin.delete_topics([*self.topics.values(), f"it-{self.uid}.scope"])
        finally:
            admin.close()


@pytest.fixture
def pipeline(tmp_path, tiny_registry):
    p = Pipeline(tmp_path, tiny_registry)
    yield p
    p.close()


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


def wait_for(cond: Callable[[], bool], timeout: float, what: str, pipeline: Pipeline) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    logs = "\n".join(p.read_text()[-3000:] for p in pipeline.tmp.glob("worker-*.log"))
    raise AssertionError(f"timed out waiting for {what}; worker logs:\n{logs}")


def metric_samples(port: int, name: str) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name)
    }


def test_articles_end_up_scored_in_elasticsearch_exactly_once(pipeline):
    batch = articles(300, "once")
    pipeline.produce(batch[:200])
    pipeline.start_worker(18061)
    pipeline.produce(batch[100:])  # 100 re-sent, as an at-least-once producer may
    wait_for(lambda: pipeline.count() >= 300, 120, "300 articles in ES", pipeline)
    time.sleep(3)
    ids = pipeline.ids()
    assert len(ids) == 300 and set(ids) == {a.id for a in batch}
    doc = pipeline.store.get(batch[0].id)
    assert doc.model_version and doc.sentiment in ("negative", "neutral", "positive")
    scored = metric_samples(18061, "finpulse_articles_scored_total")
    assert sum(scored.values()) == 400  # every delivery is scored; the store dedups


def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(pipeline):
    batch = articles(1500, "kill")
    pipeline.produce(batch)
    first = pipeline.start_worker(18062)
    wait_for(lambda: pipeline.count() >= 200, 120, "the worker to get going", pipeline)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    at_kill = pipeline.count()
    assert at_kill < 1500, "the worker finished before it could be killed; raise N"
    pipeline.start_worker(18062)
    wait_for(lambda: pipeline.count() >= 1500, 180, "all 1500 articles after restart", pipeline)
    time.sleep(3)
    ids = pipeline.ids()
    assert len(ids) == 1500 and set(ids) == {a.id for a in batch}


def test_malformed_messages_land_in_the_deadletter_topic(pipeline):
    good = articles(20, "dl")
    bad = [b"{not json", b'{"id": "x", "source": "s"}']
    pipeline.produce(good, raw=bad)
    pipeline.start_worker(18063)
    wait_for(lambda: pipeline.count() >= 20, 120, "the good articles", pipeline)
    consumer = KafkaConsumer(
        pipeline.topics["deadletter_topic"], bootstrap_servers=KAFKA,
        auto_offset_reset="earliest", consumer_timeout_ms=10_000,
    )  # fmt: skip
    letters = {m.value: dict(m.headers) for m in consumer}
    consumer.close()
    assert set(letters) == set(bad)
    assert letters[bad[0]]["finpulse.deadletter.reason"] == b"malformed"
    assert letters[bad[1]]["finpulse.deadletter.reason"] == b"invalid"
    assert pipeline.count() == 20


def test_two_workers_split_the_partitions(pipeline):
    ports = (18064, 18065)
    for port in ports:
        pipeline.start_worker(port)
    time.sleep(20)  # both join the group before the data arrives
    batch = articles(800, "split")
    pipeline.produce(batch)
    wait_for(lambda: pipeline.count() >= 800, 180, "800 articles with two workers", pipeline)
    time.sleep(6)  # one consumer-lag refresh
    raw = pipeline.topics["raw_topic"]
    owned = []
    for port in ports:
        lag = metric_samples(port, "finpulse_consumer_lag")
        owned.append({k for k in lag if f'topic="{raw}"' in k})
        assert sum(metric_samples(port, "finpulse_articles_scored_total").values()) > 0
    assert owned[0] and owned[1] and not owned[0] & owned[1]
    assert len(owned[0] | owned[1]) == PARTITIONS
    assert len(pipeline.ids()) == 800
