"""Against the real broker (deploy/local/services.sh up): what arrives on Kafka, once each."""

import asyncio
import functools
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from app.cli import app
from finpulse.config import KafkaSettings
from finpulse.contracts import Article, article_id, decode
from ingest.sinks.kafka_sink import KafkaSink

pytestmark = pytest.mark.integration

BOOTSTRAP = "127.0.0.1:19092"
DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def topic_name() -> str:
    return f"test.ingest.{uuid.uuid4().hex[:12]}"


def partitions(c: KafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions, waiting (bounded) for metadata on a busy broker."""
    deadline = time.monotonic() + 20
    while not (found := c.partitions_for_topic(topic)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found or set()


def read_topic(topic: str) -> list[tuple[bytes, Article]]:
    """Every message on ``topic`` (all partitions, from the start), decoded."""
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in partitions(c, topic)]
        assert parts, f"topic {topic} not found"
        end = sum(c.end_offsets(parts).values())
        c.assign(parts)
        c.seek_to_beginning(*parts)
        out: list[tuple[bytes, Article]] = []
        for _ in range(60):
            for msgs in c.poll(timeout_ms=1000).values():
                out += [(m.key, decode(Article, m.value)) for m in msgs]
            if len(out) >= end:
                break
        return out
    finally:
        c.close()


def cli():
    return app


def write_config(path: Path, site, tmp_path: Path, topic: str) -> Path:
    path.write_text(
        f"""
[kafka]
bootstrap_servers = "{BOOTSTRAP}"
raw_topic = "{topic}"
partitions = 3
request_timeout_s = 10

[ingest]
allow_private_addresses = ["127.0.0.1/32"]
host_min_interval_s = 0
dedup_db = "{tmp_path / "ingest.db"}"
spool_path = "{tmp_path / "spool.jsonl"}"

[ingest.watchlist]
GLBX = ["Globex"]

[[ingest.sources]]
kind = "rss"
name = "wire"
url = "{site.url("/feed.xml")}"

[[ingest.sources]]
kind = "rss"
name = "republish"
url = "{site.url("/republish.xml")}"

[[ingest.sources]]
kind = "rss"
name = "etag"
url = "{site.url("/etag.xml")}"

[[ingest.sources]]
kind = "rss"
name = "broken"
url = "{site.url("/junk.xml")}"
"""
    )
    return path


def test_crawl_once_puts_expected_articles_on_kafka_exactly_once(site, tmp_path):
    topic = topic_name()
    config = write_config(tmp_path / "finpulse.toml", site, tmp_path, topic)
    runner = CliRunner()
    first = runner.invoke(cli(), ["--config", str(config), "crawl", "--once", "--no-metrics"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli(), ["--config", str(config), "crawl", "--once", "--no-metrics"])
    assert second.exit_code == 0, second.output

    messages = read_topic(topic)
    b = site.base
    expected = {
        article_id(f"{b}/news/acme-cuts?id=7"),
        article_id(f"{b}/news/globex-beats"),
        article_id(source="wire", guid="initech-ch11"),
        article_id(source="wire", guid="g-2"),
        article_id(f"{b}/wire/fed-1"),  # its "UPDATE 1-" republish is a near-duplicate
        article_id(f"{b}/wire/oil"),
        article_id(f"{b}/news/stable"),
    }
    ids = [a.id for _, a in messages]
    assert sorted(ids) == sorted(expected)  # each once, across two runs
    assert all(key == a.id.encode() for key, a in messages)
    acme = next(a for _, a in messages if a.url == f"{b}/news/acme-cuts?id=7")
    assert acme.tickers == ["ACME"] and acme.published_at.isoformat() == "2026-01-02T09:00:00+00:00"
    assert "<" not in acme.title + acme.body
    etag_hits = site.hits_for("/etag.xml")
    assert etag_hits[1].headers.get("if-none-match") == '"v1"'  # 2nd run: conditional GET

    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP)
    try:
        assert len(partitions(c, topic)) == 3  # created with the configured partitions
    finally:
        c.close()


@pytest.mark.slow
def test_replay_sent_valid_produces_one_article_per_row(tmp_path):
    data = DATA / "twitter-fin-sentiment" / "sent_valid.csv"
    if not data.is_file():
        pytest.skip(f"data set not found at {data}")
    topic = topic_name()
    config = tmp_path / "finpulse.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{BOOTSTRAP}"\n'
        f'[ingest]\ndedup_db = "{tmp_path / "i.db"}"\nspool_path = "{tmp_path / "s.jsonl"}"\n'
    )
    labels = tmp_path / "labels.jsonl"
    result = CliRunner().invoke(
        cli(),
        ["--config", str(config), "replay", str(data), "--text-column", "text",
         "--label-column", "label", "--labels-out", str(labels), "--topic", topic],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    messages = read_topic(topic)
    assert len(messages) == 2388
    assert len({a.id for _, a in messages}) == 2388
    assert len(labels.read_text().splitlines()) == 2388


def test_undeliverable_article_is_spooled_then_resent(tmp_path):
    """A real delivery failure (message over the producer's size limit) is retried, counted,
    kept in the spool, and delivered by the next start."""
    topic = topic_name()
    kafka = KafkaSettings(bootstrap_servers=BOOTSTRAP, partitions=1, request_timeout_s=10)
    spool = tmp_path / "spool.jsonl"
    big = Article.create(source="t", guid="big", title="Big", body="x" * 5000,
                         published_at="2026-01-01T00:00:00Z")  # fmt: skip
    reg = CollectorRegistry()
    tiny = functools.partial(KafkaProducer, max_request_size=2000)

    async def first():
        sink = KafkaSink(kafka, topic=topic, spool_path=spool, delivery_retries=2,
                         retry_backoff_s=0.01, registry=reg, producer_factory=tiny)  # fmt: skip
        async with sink:
            await sink.send(big)
        return sink

    sink = asyncio.run(first())
    assert sink.spooled == 1
    assert reg.get_sample_value("finpulse_producer_delivery_failures_total") == 3
    assert decode(Article, spool.read_bytes().splitlines()[0]) == big

    async def second():
        sink = KafkaSink(kafka, topic=topic, spool_path=spool, registry=CollectorRegistry())
        async with sink:
            pass
        return sink

    assert asyncio.run(second()).delivered == 1
    assert not spool.exists()
    assert [a for _, a in read_topic(topic)] == [big]
