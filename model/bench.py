"""Scoring benchmark: the champion as the stream uses it vs a naive baseline, as JSON.

The stream hands the scorer batches in arrival order, so the "stream" figure scores the
validation tweets in consecutive batches of ``model.batch_size`` (dynamic padding within
each); "bulk" gives the scorer the whole file at once (what ``finpulse score`` does: sort
by length, pad per bucket). The baseline is the same model on the same stream batches, cut
into batches of 32 texts in arrival order and padded to 128 tokens; it runs its batches in
parallel as the scorer does, so the speed-up is that of padding and bucketing alone.

    finpulse bench score [--model REF] [--limit N] [--repeat N]
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from model.config import ModelSettings
from model.data import load_split
from model.labels import TASKS


def _latencies(fn: Callable[[list[str]], Any], chunks: list[list[str]]) -> dict[str, Any]:
    times = []
    started = time.perf_counter()
    for chunk in chunks:
        t = time.perf_counter()
        fn(chunk)
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - started
    n = sum(len(c) for c in chunks)
    return {
        "articles": n,
        "seconds": round(wall, 3),
        "articles_per_s": round(n / wall, 1),
        "batch_size": len(chunks[0]),
        "batch_p50_ms": round(float(np.percentile(times, 50)) * 1000, 2),
        "batch_p99_ms": round(float(np.percentile(times, 99)) * 1000, 2),
    }


def bench(
    settings: ModelSettings,
    data_dir: Path,
    *,
    model: str = "champion",
    limit: int | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """``repeat`` scores the tweets that many times over: a GPU gets through them in a blink."""
    from model.device import dtype_policy, gpu_available
    from model.scorer import Scorer

    valid = load_split(data_dir, settings.data_files, "valid")
    texts = [x for t in TASKS for x in valid[t].texts]
    rng = np.random.default_rng(0)
    texts = [texts[i] for i in rng.permutation(len(texts))][:limit] * repeat
    scorer = Scorer.load(model, settings)
    bs = scorer.batch_size

    def split(size: int) -> list[list[str]]:
        return [texts[i : i + size] for i in range(0, len(texts), size)]

    def naive(chunk: list[str]) -> Any:
        return scorer.predict_proba(chunk, batch_size=32, fixed_length=128)

    # Warm-up: trace the graphs (on XLA, one per batch shape) before timing anything.
    scorer.predict(texts[: bs * 8])
    naive(texts[:bs])
    stream = _latencies(scorer.predict, split(bs))
    started = time.perf_counter()
    scorer.predict(texts)
    bulk_s = time.perf_counter() - started
    baseline = {**_latencies(naive, split(bs)), "model_batch_size": 32, "padded_to": 128}
    return {
        "model_version": scorer.version,
        "device": "gpu" if gpu_available() else "cpu",
        "parallel_batches": scorer.parallel,
        "dtype_policy": dtype_policy(settings.precision),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "texts": "validation tweets (topic + sentiment), shuffled",
        "stream": stream,
        "bulk": {
            "articles": len(texts),
            "seconds": round(bulk_s, 3),
            "articles_per_s": round(len(texts) / bulk_s, 1),
        },
        "naive_baseline": baseline,
        "speedup_stream_vs_naive": round(stream["articles_per_s"] / baseline["articles_per_s"], 2),
        "speedup_bulk_vs_naive": round(len(texts) / bulk_s / baseline["articles_per_s"], 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets": {"cpu_articles_per_s": 400, "gpu_articles_per_s": 20000, "speedup": 3.0},
    }
