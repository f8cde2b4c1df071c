"""A real round trip through each service that deploy/local/services.sh runs."""

import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import Counter, Gauge

pytestmark = pytest.mark.integration


def poll(what: str, fetch: Callable[[], object], timeout: float, interval: float = 0.5) -> object:
    """Calls fetch until it returns something truthy; fails with the last value after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout}s (last: {value!r})")
        time.sleep(interval)


def _produce_and_consume(bootstrap: str, topic: str, message: bytes) -> tuple:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_block_ms=15000, request_timeout_ms=15000
    )
    try:
        sent = producer.send(topic, key=b"k", value=message).get(timeout=15)
    finally:
        producer.close(timeout=5)

    # Assigned, not subscribed: no consumer-group join to wait for.
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=15000
    )
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records = poll(
            f"message on {topic}",
            lambda: consumer.poll(timeout_ms=1000).get(partition, []),
            timeout=30,
        )
    finally:
        consumer.close()
    return sent, records


def test_kafka_round_trip(kafka_bootstrap):
    topic = f"it-services-{uuid.uuid4().hex[:12]}"
    message = f"hello {topic}".encode()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=15000)
    try:
        admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1)], timeout_ms=15000
        )
        try:
            sent, records = _produce_and_consume(kafka_bootstrap, topic, message)
        finally:
            admin.delete_topics([topic], timeout_ms=15000)
    finally:
        admin.close()

    assert [(r.offset, r.key, r.value) for r in records] == [(sent.offset, b"k", message)]


def test_elasticsearch_round_trip(elasticsearch_url):
    index = f"it-services-{uuid.uuid4().hex[:12]}"
    doc = {"title": "Acme beats earnings expectations", "topic": "earnings"}
    es = Elasticsearch(elasticsearch_url, request_timeout=30)
    try:
        es.indices.create(
            index=index,
            mappings={"properties": {"title": {"type": "text"}, "topic": {"type": "keyword"}}},
        )
        es.index(index=index, id="doc-1", document=doc)
        es.indices.refresh(index=index)
        found = es.search(index=index, query={"match": {"title": "earnings"}})
        missed = es.search(index=index, query={"match": {"title": "merger"}})
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.close()

    assert found["hits"]["total"]["value"] == 1
    assert [(h["_id"], h["_source"]) for h in found["hits"]["hits"]] == [("doc-1", doc)]
    assert missed["hits"]["total"]["value"] == 0


def test_prometheus_scrapes_evaluates_and_alerts(services, metrics_registry, alert_webhook):
    run_id = uuid.uuid4().hex[:12]
    topic = f"selftest-{run_id}"
    scored = Counter(
        "finpulse_articles_scored", "Articles scored", ["topic", "sentiment"],
        registry=metrics_registry,
    )  # fmt: skip
    trigger = Gauge(
        "finpulse_selftest_trigger", "Fires FinpulseLocalSelfTest", ["run_id"],
        registry=metrics_registry,
    )  # fmt: skip

    def query(expr: str) -> list[dict]:
        url = f"{services.prometheus_url}/api/v1/query"
        resp = httpx.get(url, params={"query": expr}, timeout=5)
        resp.raise_for_status()
        return resp.json()["data"]["result"]

    def score_more() -> None:
        # 80% negative and well above the rule's 20-articles-per-5m volume guard.
        scored.labels(topic=topic, sentiment="negative").inc(40)
        scored.labels(topic=topic, sentiment="positive").inc(10)

    # (a) Prometheus scrapes the exporter, and the real recording rule sees the spike.
    def negative_share() -> list[dict]:
        score_more()
        return query(f'finpulse:negative_share:rate5m{{topic="{topic}"}}')

    share = poll("finpulse:negative_share:rate5m for the test topic", negative_share, timeout=30)
    assert float(share[0]["value"][1]) == pytest.approx(0.8, abs=0.05)
    [sample] = query(f'finpulse_articles_scored_total{{topic="{topic}",sentiment="negative"}}')
    assert sample["metric"]["job"] == "finpulse"
    assert sample["metric"]["component"] == "worker"

    # The real alert's condition holds; its `for: 2m` keeps it pending for the test's lifetime.
    def real_alert() -> list[dict]:
        score_more()
        return query(f'ALERTS{{alertname="FinpulseNegativeShareHigh",topic="{topic}"}}')

    [alert] = poll("FinpulseNegativeShareHigh pending", real_alert, timeout=30)
    assert alert["metric"]["alertstate"] == "pending"
    assert alert["metric"]["severity"] == "warning"

    # (b) A rule evaluation reaches Alertmanager and its webhook (rules.local/selftest.yml).
    trigger.labels(run_id=run_id).set(1)

    def at_alertmanager() -> list[dict]:
        resp = httpx.get(
            f"{services.alertmanager_url}/api/v2/alerts",
            params={"filter": ["alertname=FinpulseLocalSelfTest", f"run_id={run_id}"]},
            timeout=5,
        )
        resp.raise_for_status()
        return resp.json()

    [am_alert] = poll("FinpulseLocalSelfTest at Alertmanager", at_alertmanager, timeout=60)
    assert am_alert["status"]["state"] == "active"
    assert am_alert["labels"]["job"] == "finpulse"

    def ours(payload: dict) -> bool:
        return any(
            a["status"] == "firing" and a["labels"].get("run_id") == run_id
            for a in payload["alerts"]
        )

    notification = alert_webhook.wait_for(ours, timeout=60)
    assert notification["receiver"] == "finpulse-webhook"
    assert notification["groupLabels"] == {"alertname": "FinpulseLocalSelfTest"}
