"""Pipeline benchmark: the scorer alone, Kafka → worker(s) → Elasticsearch, and embedded.

Prints one JSON object. Per Kafka run: sustained articles/s of a flat-out burst (first
produce to last ``indexed_at``), then fetch-to-indexed latency p50/p99 at half that rate
(``indexed_at - fetched_at`` of every document). The target is Kafka throughput >= 80% of
the scorer's own and p99 < 2 s at half of peak.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from rich.console import Console

from finpulse.contracts import Article, encode, utcnow
from finpulse.settings import Settings, to_toml
from stream.config import StreamSettings
from stream.deadletter import JsonlDeadLetters
from stream.embedded import EmbeddedRunner
from stream.metrics import StreamMetrics
from stream.scoring import BatchScorer, RegistryModels
from stream.sinks.elasticsearch import ElasticsearchStore
from stream.sinks.sqlite import SqliteStore
from stream.writer import StoreWriter

err = Console(stderr=True)
REPO = Path(__file__).resolve().parents[1]


def texts(settings: Settings, n: int) -> list[str]:
    """Real tweet texts from the sentiment set, cycled to ``n``."""
    path = settings.data_dir / "twitter-fin-sentiment" / "sent_valid.csv"
    with path.open(encoding="utf-8") as f:
        rows = [r["text"] for r in csv.DictReader(f)]
    return [rows[i % len(rows)] for i in range(n)]


def make_articles(texts_: list[str], tag: str) -> list[Article]:
    t0 = utcnow() - timedelta(minutes=10)
    return [
        Article.create(
            source=f"bench{i % 4}",
            guid=f"{tag}-{i}",
            title=t[:300],
            published_at=t0 + timedelta(milliseconds=i),
        )
        for i, t in enumerate(texts_)
    ]


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_s": float("nan"), "p99_s": float("nan")}
    v = sorted(values)
    return {
        "p50_s": round(v[len(v) // 2], 3),
        "p99_s": round(v[min(len(v) - 1, int(len(v) * 0.99))], 3),
    }


def scorer_throughput(scorer: BatchScorer, texts_: list[str], batch: int) -> float:
    assert scorer.scorer is not None
    scorer.scorer.predict(texts_[:batch])  # warm-up (graph tracing)
    start = time.perf_counter()
    for i in range(0, len(texts_), batch):
        scorer.scorer.predict(texts_[i : i + batch])
    return len(texts_) / (time.perf_counter() - start)


class KafkaRun:
    """Isolated topics, group and index; ``workers`` worker subprocesses."""

    def __init__(self, settings: Settings, workers: int, model: str | None, tmp: Path) -> None:
        from kafka import KafkaProducer
        from kafka.admin import KafkaAdminClient, NewTopic

        uid = uuid.uuid4().hex[:8]
        k = settings.kafka.model_copy(
            update={"raw_topic": f"bench-{uid}.raw", "scored_topic": f"bench-{uid}.scored",
                    "deadletter_topic": f"bench-{uid}.dl", "rates_topic": f"bench-{uid}.rates"}
        )  # fmt: skip
        self.settings = settings.model_copy(
            update={
                "kafka": k,
                "elasticsearch": settings.elasticsearch.model_copy(
                    update={"index": f"bench-{uid}"}
                ),
                "stream": settings.stream.model_copy(
                    update={"app_id": f"bench-{uid}", "scope_topic": f"bench-{uid}.scope"}
                ),
                "store": settings.store.model_copy(update={"backend": "elasticsearch"}),
            }
        )
        self.topics = [k.raw_topic, k.scored_topic, k.deadletter_topic, k.rates_topic,
                       f"bench-{uid}.scope"]  # fmt: skip
        self.admin = KafkaAdminClient(bootstrap_servers=k.bootstrap_servers)
        self.admin.create_topics(
            [NewTopic(t, k.partitions, k.replication_factor) for t in self.topics]
        )
        self.store = ElasticsearchStore(self.settings.elasticsearch)
        config = tmp / f"bench-{uid}.toml"
        config.write_text(to_toml(self.settings))  # secrets are masked: local services only
        self.procs = []
        for w in range(workers):
            cmd = [sys.executable, "-m", "stream.worker", "-c", str(config), "--no-alerts",
                   "--web-port", str(18070 + w), "--loglevel", "warn"]  # fmt: skip
            if model:
                cmd += ["--model", model]
            log = (tmp / f"bench-{uid}-worker{w}.log").open("w")
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            self.procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=log, env=env))
        self.producer = KafkaProducer(bootstrap_servers=k.bootstrap_servers, linger_ms=5)

    def produce(self, articles: list[Article], rate: float = 0.0) -> None:
        start = time.perf_counter()
        for i, a in enumerate(articles):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            a = a.model_copy(update={"fetched_at": utcnow()})
            self.producer.send(self.settings.kafka.raw_topic, key=a.id.encode(), value=encode(a))
        self.producer.flush(60)

    def wait_count(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.store.refresh()
            if self.store.count() >= n:
                return
            time.sleep(0.25)
        raise TimeoutError(f"only {self.store.count()} of {n} articles indexed in {timeout}s")

    def latencies(self, ids: set[str]) -> tuple[list[float], float]:
        """fetch-to-indexed seconds of ``ids``, and the last indexed_at (epoch)."""
        from elasticsearch.helpers import scan

        lat, last = [], 0.0
        for hit in scan(
            self.store.es, index=self.store.index_name, _source=["fetched_at", "indexed_at"]
        ):
            if hit["_id"] in ids:
                f = datetime.fromisoformat(hit["_source"]["fetched_at"])
                x = datetime.fromisoformat(hit["_source"]["indexed_at"])
                lat.append((x - f).total_seconds())
                last = max(last, x.timestamp())
        return lat, last

    def close(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        self.producer.close()
        self.store.es.indices.delete(index=self.store.index_name, ignore_unavailable=True)
        self.store.close()
        self.admin.delete_topics(self.topics)
        self.admin.close()


def kafka_bench(settings: Settings, workers: int, data: list[str], model: str | None,
                tmp: Path) -> dict[str, Any]:  # fmt: skip
    run = KafkaRun(settings, workers, model, tmp)
    try:
        warm = make_articles(data[:200], f"warm{workers}")
        run.produce(warm)
        run.wait_count(len(warm), 300)  # workers up, model loaded, group settled
        burst = make_articles(data, f"burst{workers}")
        started = utcnow().timestamp()
        run.produce(burst)
        run.wait_count(len(warm) + len(burst), 600)
        lat, last = run.latencies({a.id for a in burst})
        throughput = len(burst) / (last - started)
        half = make_articles(data[: len(data) // 2], f"half{workers}")
        run.produce(half, rate=throughput / 2)
        run.wait_count(len(warm) + len(burst) + len(half), 600)
        half_lat, _ = run.latencies({a.id for a in half})
        return {
            "workers": workers,
            "articles_per_s": round(throughput, 1),
            "burst_latency": percentiles(lat),
            "half_load_rate": round(throughput / 2, 1),
            "half_load_latency": percentiles(half_lat),
        }
    finally:
        run.close()


def embedded_bench(settings: Settings, data: list[str], model: str | None, tmp: Path) -> dict:
    metrics = StreamMetrics(CollectorRegistry())
    s: StreamSettings = settings.stream
    store = SqliteStore(tmp / "bench-embedded.db")
    letters = JsonlDeadLetters(tmp / "bench-dl.jsonl")
    scorer = BatchScorer(RegistryModels(settings.model, pin=model), metrics)
    runner = EmbeddedRunner(s, scorer, StoreWriter(store, metrics, letters), metrics, letters)
    articles = make_articles(data, "embedded")

    async def feed() -> None:
        for a in articles:
            await runner.put(a.model_copy(update={"fetched_at": utcnow()}))

    started = time.perf_counter()
    asyncio.run(runner.run(feed()))
    elapsed = time.perf_counter() - started
    rows = store._db.execute("SELECT fetched_at, indexed_at FROM articles").fetchall()
    store.close()
    return {
        "articles_per_s": round(len(articles) / elapsed, 1),
        "burst_latency": percentiles([x - f for f, x in rows]),
    }


def main(
    settings: Settings, *, n: int, workers: list[int], embedded: bool, model: str | None
) -> dict[str, Any]:
    data = texts(settings, n)
    scorer = BatchScorer(
        RegistryModels(settings.model, pin=model), StreamMetrics(CollectorRegistry())
    )
    scorer.refresh(force=True)
    batch = settings.stream.batch_size
    err.print(f"scorer alone ({scorer.version}) on {n} texts, batches of {batch}")
    result: dict[str, Any] = {
        "n": n,
        "model": scorer.version,
        "batch_size": batch,
        "partitions": settings.kafka.partitions,
        "cpus": os.cpu_count(),
        "scorer_articles_per_s": round(scorer_throughput(scorer, data, batch), 1),
        "kafka": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for w in workers:
            err.print(f"Kafka → {w} worker(s) → Elasticsearch")
            result["kafka"].append(kafka_bench(settings, w, data, model, Path(tmp)))
        if embedded:
            err.print("embedded runner → SQLite")
            result["embedded"] = embedded_bench(settings, data, model, Path(tmp))
    peak = max((r["articles_per_s"] for r in result["kafka"]), default=0.0)
    result["kafka_vs_scorer"] = round(peak / result["scorer_articles_per_s"], 2)
    result["measured_at"] = datetime.now(UTC).isoformat()
    print(json.dumps(result, indent=2))
    return result
