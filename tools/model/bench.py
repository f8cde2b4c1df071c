"""Scoring benchmark: the champion as the stream uses it vs a naive baseline, as JSON.

The stream hands the scorer batches in arrival order, so the "stream" figure scores the
validation tweets in consecutive batches of ``model.batch_size`` (dynamic padding within
each); "bulk" gives the scorer the whole file at once (what ``finpulse score`` does: sort
by length, pad per bucket). The baseline is the same model on the same stream batches, cut
into batches of 32 texts in arrival order and padded to 128 tokens; it runs its batches in
parallel as the scorer does, so the speed-up is that of padding and bucketing alone.

``--compare`` loads every scoring path (TensorFlow float32 and bfloat16, ONNX Runtime fp32
and int8) in one process and scores the same texts with each, batch by batch in rotating
order, so a busy machine slows them alike; labels are compared with TensorFlow float32's.

    finpulse bench score [--model REF] [--limit N] [--repeat N]
    finpulse bench score --compare [--paths P,P] [--rounds N] [--limit N]
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
from model.metrics import task_metrics

# name -> (model.scoring_path, model.precision); the first is the reference of --compare.
PATHS = {
    "tensorflow-float32": ("tensorflow", "float32"),
    "tensorflow-bfloat16": ("tensorflow", "bfloat16"),
    "onnx": ("onnx", "float32"),
    "onnx-int8": ("onnx-int8", "float32"),
}
TARGETS = {"cpu_articles_per_s": 400, "gpu_articles_per_s": 20000, "speedup": 3.0}


def _validation(settings: ModelSettings, data_dir: Path, limit: int | None, repeat: int) -> tuple:
    """Validation tweets of both tasks, shuffled: (texts, tasks, labels)."""
    valid = load_split(data_dir, settings.data_files, "valid")
    rows = [(x, t, y) for t in TASKS for x, y in zip(valid[t].texts, valid[t].labels, strict=True)]
    rng = np.random.default_rng(0)
    rows = [rows[i] for i in rng.permutation(len(rows))][:limit] * repeat
    return tuple(list(col) for col in zip(*rows, strict=True))


def _latencies(fn: Callable[[list[str]], Any], chunks: list[list[str]]) -> dict[str, Any]:
    times = []
    started = time.perf_counter()
    for chunk in chunks:
        t = time.perf_counter()
        fn(chunk)
        times.append(time.perf_counter() - t)
    return _speed(times, time.perf_counter() - started, sum(len(c) for c in chunks), len(chunks[0]))


def _speed(times: list[float], wall: float, n: int, batch: int) -> dict[str, Any]:
    return {
        "articles": n,
        "seconds": round(wall, 3),
        "articles_per_s": round(n / wall, 1),
        "batch_size": batch,
        "batch_p50_ms": round(float(np.percentile(times, 50)) * 1000, 2),
        "batch_p99_ms": round(float(np.percentile(times, 99)) * 1000, 2),
    }


def _machine() -> dict[str, Any]:
    from model.device import cpu_bf16, gpu_available

    return {
        "device": "gpu" if gpu_available() else "cpu",
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "cpu_bf16": cpu_bf16(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def status_mib(field: str, pid: int | str = "self") -> float | None:
    """A memory line of ``/proc/<pid>/status`` in MiB (``VmRSS`` now, ``VmHWM`` the peak, which
    the worker's memory target is about); None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next(
        (line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:")), None
    )
    return round(int(kib) / 1024, 1) if kib else None


def _rss_mib() -> float:
    return status_mib("VmRSS") or 0.0


def bench(
    settings: ModelSettings,
    data_dir: Path,
    *,
    model: str = "champion",
    limit: int | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """``repeat`` scores the tweets that many times over: a GPU gets through them in a blink."""
    from model.scorer import Scorer

    texts = _validation(settings, data_dir, limit, repeat)[0]
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
    machine = _machine()
    return {
        "model_version": scorer.version,
        "device": machine.pop("device"),
        "parallel_batches": scorer.parallel,
        "dtype_policy": scorer.plan.dtype_policy,
        "scoring": scorer.scoring,
        **machine,
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
        "peak_rss_mib": _peak_rss_mib(),
        "targets": TARGETS,
    }


def _load_paths(settings: ModelSettings, model: str, paths: list[str]) -> dict[str, Any]:
    from model.scorer import Scorer

    loaded = {}
    for name in paths:
        path, precision = PATHS[name]
        before, started = _rss_mib(), time.perf_counter()
        scorer = Scorer.load(
            model, settings.model_copy(update={"scoring_path": path, "precision": precision})
        )
        loaded[name] = {
            "scorer": scorer,
            "info": {
                "scoring": scorer.scoring,
                "load_seconds": round(time.perf_counter() - started, 2),
                "rss_added_mib": round(_rss_mib() - before, 1),
            },
        }
    return loaded


def _quality(
    probs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    truth: tuple[list[str], list[str]],
    names: dict[str, list[str]],
) -> dict[str, Any]:
    """Labels changed against the reference, and validation metrics on the labeled rows."""
    tasks, labels = truth
    validation = {}
    for t in TASKS:
        mine = np.array([x == t for x in tasks])
        gold = [y for y, m in zip(labels, mine, strict=True) if m]
        metrics = task_metrics(gold, probs[t][mine], names[t])
        validation[t] = {k: round(metrics[k], 4) for k in ("accuracy", "macro_f1")}
    return {
        "changed_labels": {
            t: round(float(np.mean(probs[t].argmax(1) != reference[t].argmax(1))), 4) for t in TASKS
        },
        "max_abs_prob_diff": {
            t: round(float(np.abs(probs[t] - reference[t]).max()), 6) for t in TASKS
        },
        "validation": validation,
    }


def compare(
    settings: ModelSettings,
    data_dir: Path,
    *,
    model: str = "champion",
    paths: list[str] | None = None,
    limit: int | None = None,
    rounds: int = 3,
) -> dict[str, Any]:
    """Every path on the same texts, alternated batch by batch: speed, labels, metrics."""
    from model.device import cpu_bf16, scoring_plan

    paths = paths or [p for p in PATHS if cpu_bf16() or p != "tensorflow-bfloat16"]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        raise ValueError(f"unknown paths {unknown}; expected some of {', '.join(PATHS)}")
    texts, tasks, labels = _validation(settings, data_dir, limit, 1)
    load_average = round(os.getloadavg()[0], 2)
    loaded = _load_paths(settings, model, paths)
    bs = settings.batch_size
    chunks = [texts[i : i + bs] for i in range(0, len(texts), bs)]
    times: dict[str, list[float]] = {p: [] for p in paths}
    bulk: dict[str, float] = dict.fromkeys(paths, 0.0)
    probs: dict[str, dict[str, list]] = {p: {t: [] for t in TASKS} for p in paths}
    for name in paths:  # warm-up: first traces, oneDNN and ORT kernel caches
        loaded[name]["scorer"].predict_proba(chunks[0])
    for r in range(rounds):
        for i, chunk in enumerate(chunks):
            k = (r + i) % len(paths)
            for name in paths[k:] + paths[:k]:
                started = time.perf_counter()
                out = loaded[name]["scorer"].predict_proba(chunk)
                times[name].append(time.perf_counter() - started)
                if r == 0:
                    for t in TASKS:
                        probs[name][t].append(out[t])
        for name in paths[r % len(paths) :] + paths[: r % len(paths)]:
            started = time.perf_counter()
            loaded[name]["scorer"].predict_proba(texts)
            bulk[name] += time.perf_counter() - started
    result = {p: loaded[p]["info"] for p in paths}
    ref = paths[0]
    reference = {t: np.concatenate(probs[ref][t]) for t in TASKS}
    for name in paths:
        result[name] |= {
            "stream": _speed(times[name], sum(times[name]), len(texts) * rounds, bs),
            "bulk": {"articles_per_s": round(len(texts) * rounds / bulk[name], 1)},
            **_quality(
                {t: np.concatenate(probs[name][t]) for t in TASKS},
                reference,
                (tasks, labels),
                loaded[name]["scorer"].labels,
            ),
        }
    for name in paths:
        for kind in ("stream", "bulk"):
            speed = result[name][kind]["articles_per_s"] / result[ref][kind]["articles_per_s"]
            result[name][f"{kind}_vs_reference"] = round(speed, 2)
    for entry in loaded.values():
        entry["scorer"].close()
    chosen = scoring_plan(settings.scoring_path, settings.precision)
    return {
        "model_version": loaded[ref]["scorer"].version,
        **_machine(),
        "load_average_1m_start": load_average,
        "texts": f"{len(texts)} validation tweets (topic + sentiment), shuffled",
        "rounds": rounds,
        "reference": ref,
        "chosen": chosen.describe(),
        "paths": result,
        "peak_rss_mib": _peak_rss_mib(),
        "targets": TARGETS,
    }
