"""Pipeline benchmark: the scorer alone, Kafka → worker(s) → Elasticsearch, and embedded.

Prints one JSON object. The scorer alone is timed on the same texts in this process. Per
worker count, in a fresh :class:`~stream.sandbox.Sandbox`: a warm-up (workers up, model
loaded, group settled), then a flat-out burst — sustained articles/s from the first produce
to the last ``indexed_at`` — then a replay paced at half that rate, whose fetch-to-indexed
latency (``indexed_at - fetched_at`` of every document) is the latency figure. Targets:
Kafka throughput >= 80% of the scorer's, p99 < 2 s at half of peak.

The model is the registry's champion (or ``--model``); without one, a tiny model from
``model/tiny.py`` is trained into a temporary registry, and the JSON says so.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from rich.console import Console

from finpulse.contracts import Article, utcnow
from finpulse.settings import Settings
from stream.deadletter import JsonlDeadLetters
from stream.embedded import EmbeddedRunner
from stream.metrics import StreamMetrics
from stream.sandbox import Sandbox
from stream.scoring import BatchScorer, RegistryModels
from stream.sinks.sqlite import SqliteStore
from stream.writer import StoreWriter

err = Console(stderr=True)
WARMUP = 200
FIRST_PORT = 18070


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


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_s": None, "p99_s": None}
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


# Who used the CPU during a burst: the pipeline shares this machine's cores with its broker
# and search store, and the share they take is what the scorer cannot have.
CPU_ROLES = {"kafka.Kafka": "kafka", "org.elasticsearch": "elasticsearch",
             "stream.worker": "workers"}  # fmt: skip


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each role's live processes."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(proc.name) == os.getpid():
            role = "bench (producer, polling)"
        else:
            role = next((r for mark, r in CPU_ROLES.items() if mark in cmdline), "other")
        used[role] = used.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


def cpu_share(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, Any]:
    """Each role's share of the machine's CPU time over ``wall`` seconds."""
    capacity = wall * (os.cpu_count() or 1)
    share = {r: round(max(0.0, after[r] - before.get(r, 0.0)) / capacity, 3) for r in after}
    share["idle"] = round(max(0.0, 1 - sum(share.values())), 3)
    return dict(sorted(share.items(), key=lambda kv: -kv[1]))


def kafka_bench(
    settings: Settings, workers: int, data: list[str], model: str | None, tmp: Path
) -> dict[str, Any]:
    box = Sandbox(settings, tmp, prefix="bench")
    try:
        for w in range(workers):
            box.start_worker(FIRST_PORT + w, model=model)
        warm = make_articles(data[:WARMUP], f"warm{workers}")
        box.produce(warm)
        box.wait_count(len(warm), 300)
        burst = make_articles(data, f"burst{workers}")
        started, cpu_before = utcnow().timestamp(), cpu_seconds()
        box.produce(burst)
        box.wait_count(len(warm) + len(burst), 900)
        cpu = cpu_share(cpu_before, cpu_seconds(), utcnow().timestamp() - started)
        times = box.indexed_times()
        lat = [(x - f).total_seconds() for f, x in (times[a.id] for a in burst)]
        throughput = len(burst) / (max(times[a.id][1].timestamp() for a in burst) - started)
        half = make_articles(data[: len(data) // 2], f"half{workers}")
        box.produce(half, rate=throughput / 2)
        box.wait_count(len(warm) + len(burst) + len(half), 900)
        times = box.indexed_times()
        half_lat = [(x - f).total_seconds() for f, x in (times[a.id] for a in half)]
        return {
            "workers": workers,
            "articles_per_s": round(throughput, 1),
            "burst_latency": percentiles(lat),
            "burst_cpu_share": cpu,
            "half_load_rate": round(throughput / 2, 1),
            "half_load_latency": percentiles(half_lat),
        }
    finally:
        box.close()


def embedded_bench(settings: Settings, data: list[str], model: str | None, tmp: Path) -> dict:
    metrics = StreamMetrics(CollectorRegistry())
    store = SqliteStore(tmp / "bench-embedded.db")
    letters = JsonlDeadLetters(tmp / "bench-dl.jsonl")
    scorer = BatchScorer(RegistryModels(settings.model, pin=model), metrics)
    runner = EmbeddedRunner(
        settings.stream, scorer, StoreWriter(store, metrics, letters), metrics, letters
    )
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


def _model(settings: Settings, model: str | None, tmp: Path) -> tuple[Settings, str]:
    """Settings whose registry has the model to use, and where that model came from."""
    if model:
        return settings, f"pinned: {model}"
    if RegistryModels(settings.model).champion_version():
        return settings, f"champion of {settings.model.registry_dir}"
    from model.tiny import tiny_settings, train_tiny_model

    err.print(f"no champion in {settings.model.registry_dir}: training a tiny model")
    train_tiny_model(tmp / "models")
    tiny = tiny_settings(tmp / "models")
    return settings.model_copy(update={"model": tiny}), "tiny (model/tiny.py, random weights)"


def main(
    settings: Settings, *, n: int, workers: list[int], embedded: bool, model: str | None
) -> dict[str, Any]:
    data = texts(settings, n)
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        settings, origin = _model(settings, model, tmp)
        scorer = BatchScorer(
            RegistryModels(settings.model, pin=model), StreamMetrics(CollectorRegistry())
        )
        scorer.refresh(force=True)
        batch = settings.stream.batch_size
        err.print(f"scorer alone ({scorer.version}) on {n} texts, batches of {batch}")
        result: dict[str, Any] = {
            "n": n,
            "model": scorer.version,
            "model_source": origin,
            "batch_size": batch,
            "partitions": settings.kafka.partitions,
            "cpus": os.cpu_count(),
            "load_avg_1m_before": round(os.getloadavg()[0], 2),
            "scorer_articles_per_s": round(scorer_throughput(scorer, data, batch), 1),
            "kafka": [],
        }
        for w in workers:
            err.print(f"Kafka → {w} worker(s) → Elasticsearch")
            result["kafka"].append(kafka_bench(settings, w, data, model, tmp))
        if embedded:
            err.print("embedded runner → SQLite")
            result["embedded"] = embedded_bench(settings, data, model, tmp)
    peak = max((r["articles_per_s"] for r in result["kafka"]), default=0.0)
    result["kafka_vs_scorer"] = round(peak / result["scorer_articles_per_s"], 2)
    result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(result, indent=2))
    return result
