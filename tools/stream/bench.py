"""Pipeline benchmark: the scorer alone, Kafka → worker(s) → Elasticsearch, and embedded.

Prints one JSON object. The scorer alone is timed on the same texts in this process, with
as many batches in flight as a worker keeps (``stream.score_concurrency``). Per
worker count, in a fresh :class:`~tools.stream.sandbox.Sandbox`: a warm-up (workers up, model
loaded, group settled), then a flat-out burst — articles/s from the first produce to the
last ``indexed_at``, and the steady rate without the burst's fill and drain — then a
replay paced at half that rate, whose fetch-to-indexed latency (``indexed_at -
fetched_at`` of every document) is the latency figure. Targets: Kafka's steady throughput
>= 80% of the scorer's (median of three passes), p99 < 2 s at half of peak.

The model is the registry's champion (or ``--model``); without one, a tiny model from
``tools/model/tiny.py`` is trained into a temporary registry, and the JSON says so.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from rich.console import Console

from app.settings import Settings
from finpulse.contracts import Article, utcnow
from model.device import usable_cpus
from stream.deadletter import JsonlDeadLetters
from stream.embedded import EmbeddedRunner
from stream.metrics import StreamMetrics
from stream.scoring import BatchScorer, RegistryModels
from stream.sinks.sqlite import SqliteStore
from tools.model.bench import status_mib
from tools.stream.sandbox import Sandbox

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


def steady_rate(done: list[float], trim: float = 0.1) -> float:
    """Articles/s between the ``trim`` and ``1 - trim`` quantiles of completion times.

    A burst's first and last seconds are fill and drain (the first batch waiting for its
    ``take`` window, the last index request): they say how long one batch takes, not how
    fast the pipeline runs, and at a few thousand articles they are a tenth of the burst.

    >>> steady_rate([0.0] * 10 + [float(i) for i in range(1, 81)] + [200.0] * 10)
    1.0
    """
    t = sorted(done)
    lo = int(len(t) * trim)
    hi = len(t) - 1 - lo
    return (hi - lo) / max(t[hi] - t[lo], 1e-9)


def scorer_throughput(
    scorer: BatchScorer, texts_: list[str], batch: int, in_flight: int, passes: int
) -> dict:
    """The scorer alone as a worker drives it: ``in_flight`` batches at once from threads.

    The median of ``passes`` timed passes: one pass swings by a quarter on a busy box. Also
    articles per CPU-second, which a worker's figure is set against: what the worker spends
    beyond the scorer's own work is its Kafka and Faust overhead.
    """
    assert scorer.scorer is not None
    predict = scorer.scorer.predict
    predict(texts_[:batch])  # warm-up (graph tracing)
    chunks = [texts_[i : i + batch] for i in range(0, len(texts_), batch)]
    rates = []
    cpu_start = time.process_time()
    with ThreadPoolExecutor(in_flight) as pool:
        for _ in range(passes):
            start = time.perf_counter()
            list(pool.map(predict, chunks))
            rates.append(round(len(texts_) / (time.perf_counter() - start), 1))
    per_cpu = passes * len(texts_) / max(time.process_time() - cpu_start, 1e-9)
    return {
        "articles_per_s": sorted(rates)[len(rates) // 2],
        "passes": rates,
        "articles_per_cpu_s": round(per_cpu, 1),
    }


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
        # Workers on one box split its cores: each scoring one batch per core would have
        # workers x cores op threads fight over the cores (model.cpu_parallel_batches).
        parallel = max(1, usable_cpus() // workers)
        share = {"FINPULSE_MODEL__CPU_PARALLEL_BATCHES": str(parallel)}
        for w in range(workers):
            box.start_worker(FIRST_PORT + w, model=model, env=share)
        warm = make_articles(data[:WARMUP], f"warm{workers}")
        box.produce(warm)
        box.wait_count(len(warm), 300)
        burst = make_articles(data, f"burst{workers}")
        started, cpu_before = utcnow().timestamp(), cpu_seconds()
        box.produce(burst)
        box.wait_count(len(warm) + len(burst), 900)
        cpu_after = cpu_seconds()
        cpu = cpu_share(cpu_before, cpu_after, utcnow().timestamp() - started)
        worker_cpu_s = cpu_after.get("workers", 0.0) - cpu_before.get("workers", 0.0)
        times = box.indexed_times()
        lat = [(x - f).total_seconds() for f, x in (times[a.id] for a in burst)]
        done = [times[a.id][1].timestamp() for a in burst]
        throughput = len(burst) / (max(done) - started)
        half = make_articles(data[: len(data) // 2], f"half{workers}")
        box.produce(half, rate=throughput / 2)
        box.wait_count(len(warm) + len(burst) + len(half), 900)
        times = box.indexed_times()
        half_lat = [(x - f).total_seconds() for f, x in (times[a.id] for a in half)]
        peaks = [status_mib("VmHWM", p.pid) for p in box.procs]
        return {
            "workers": workers,
            "parallel_batches_per_worker": parallel,
            "articles_per_s": round(throughput, 1),
            "steady_articles_per_s": round(steady_rate(done), 1),
            "burst_latency": percentiles(lat),
            "burst_cpu_share": cpu,
            "articles_per_worker_cpu_s": round(len(burst) / max(worker_cpu_s, 1e-9), 1),
            "half_load_rate": round(throughput / 2, 1),
            "half_load_latency": percentiles(half_lat),
            "worker_peak_rss_mib": peaks,
        }
    finally:
        box.close()


def embedded_bench(settings: Settings, data: list[str], model: str | None, tmp: Path) -> dict:
    metrics = StreamMetrics(CollectorRegistry())
    store = SqliteStore(tmp / "bench-embedded.db")
    letters = JsonlDeadLetters(tmp / "bench-dl.jsonl")
    scorer = BatchScorer(RegistryModels(settings.model, pin=model), metrics)
    runner = EmbeddedRunner.create(
        settings.stream, scorer, store, letters, metrics,
        evidence_size=settings.alerts.evidence_size,
    )  # fmt: skip
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
    from tools.model.tiny import tiny_settings, train_tiny_model

    err.print(f"no champion in {settings.model.registry_dir}: training a tiny model")
    train_tiny_model(tmp / "models")
    tiny = tiny_settings(tmp / "models")
    return settings.model_copy(update={"model": tiny}), "tiny (tools/model/tiny.py, random weights)"


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
        err.print(
            f"scorer alone ({scorer.version}) on {n} texts, batches of {batch},"
            f" {settings.stream.score_concurrency} in flight"
        )
        result: dict[str, Any] = {
            "n": n,
            "model": scorer.version,
            "model_source": origin,
            "batch_size": batch,
            "score_concurrency": settings.stream.score_concurrency,
            "partitions": settings.kafka.partitions,
            "cpus": os.cpu_count(),
            "load_avg_1m_before": round(os.getloadavg()[0], 2),
            "scorer": scorer_throughput(
                scorer, data, batch, in_flight=settings.stream.score_concurrency, passes=3
            ),
            "kafka": [],
        }
        for w in workers:
            err.print(f"Kafka → {w} worker(s) → Elasticsearch")
            result["kafka"].append(kafka_bench(settings, w, data, model, tmp))
        if embedded:
            err.print("embedded runner → SQLite")
            result["embedded"] = embedded_bench(settings, data, model, tmp)
    peak = max((r["steady_articles_per_s"] for r in result["kafka"]), default=0.0)
    result["kafka_vs_scorer"] = round(peak / result["scorer"]["articles_per_s"], 2)
    # Per CPU-second: how much of the scorer's efficiency one worker keeps.
    one = next((r for r in result["kafka"] if r["workers"] == 1), None)
    if one:
        result["worker_vs_scorer_per_cpu_s"] = round(
            one["articles_per_worker_cpu_s"] / result["scorer"]["articles_per_cpu_s"], 2
        )
    result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(result, indent=2))
    return result
