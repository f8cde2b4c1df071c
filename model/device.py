"""Where the model runs: a GPU with mixed precision when one is present, else the CPU.

Nothing here fails when there is no GPU; ``float16`` asked for on a CPU quietly becomes
float32, because half precision is slower there than full. CPUs with AMX-BF16 (Sapphire
Rapids and later) multiply bfloat16 natively: there ``auto`` picks mixed bfloat16, measured
1.6x faster than float32 on MiniLM with pooled vectors at cosine 0.9999 to float32's.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path

import keras

log = logging.getLogger(__name__)


@functools.cache
def gpu_available() -> bool:
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if backend == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":  # never installed beside TensorFlow, but a user may choose it
            import torch

            return bool(torch.cuda.is_available())
    except Exception as exc:  # a broken driver means CPU, not a crash
        log.debug("GPU probe failed: %s", exc)
    return False


def parallel_batches(requested: int) -> int:
    """How many batches a scorer runs at once: on a CPU, one per core, each on one thread.

    A tweet-sized batch spread over all cores spends much of its time synchronising the
    op threads; one op thread per batch and one batch per core does not (see model/README).
    TensorFlow takes its thread count only before it starts: when it already has (say,
    training earlier in this process) with another count, batches stay one at a time.
    """
    if requested == 1 or gpu_available() or keras.backend.backend() != "tensorflow":
        return 1
    n = requested or usable_cpus()
    if n == 1:
        return 1
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:  # already started with another count
        log.info("TensorFlow already started with its own thread count; one batch at a time")
        return 1
    return n


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may use: its CPU affinity, capped by a container's CPU quota.

    A pod limited to 2 CPUs on a 16-core node sees 16 cores in its affinity mask; only the
    cgroup's quota says 2 (``cpu.max`` in cgroup v2, ``cpu/cpu.cfs_quota_us`` in v1).
    """
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return cores
    if quota in ("max", "-1"):
        return cores
    return max(1, min(cores, math.ceil(int(quota) / int(period))))


@functools.cache
def cpu_has_amx_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            return any(line.startswith("flags") and " amx_bf16" in line for line in fh)
    except OSError:
        return False


def training_policy(precision: str) -> str:
    """Dtype policy for training: bfloat16 where the hardware multiplies it natively."""
    if precision == "auto":
        return "mixed_bfloat16" if gpu_available() or cpu_has_amx_bf16() else "float32"
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


def dtype_policy(precision: str) -> str:
    """The Keras dtype policy for a ``model.precision`` setting on this machine."""
    gpu = gpu_available()
    if precision == "auto":
        if gpu:
            return "mixed_float16"
        return "mixed_bfloat16" if cpu_has_amx_bf16() else "float32"
    if precision == "float16" and not gpu:
        log.info("float16 asked for without a GPU; using float32")
        return "float32"
    return {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[
        precision
    ]
