"""Where the model runs: a GPU with mixed precision when one is present, else the CPU.

Nothing here fails when there is no GPU; ``float16`` asked for on a CPU quietly becomes
float32, because half precision is slower there than full. CPUs with AMX-BF16 (Sapphire
Rapids and later) or AVX-512-BF16 (Cooper Lake, Zen 4 and later) multiply bfloat16
natively: there TensorFlow's ``auto`` precision is mixed bfloat16 (AMX: 1.6x float32 on
MiniLM; AVX-512-BF16: about 1.4x, 0.05-0.15 % of topic labels changed, model/README).
Training keeps bfloat16 to AMX, where it was measured. :func:`scoring_plan` picks the
scoring runtime for the machine: off AMX, with VNNI, ONNX Runtime int8 is faster still.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


# Device nodes some GPU driver creates (NVIDIA; AMD ROCm; WSL's GPU paravirtualisation).
GPU_DEVICE_NODES = ("nvidia[0-9]*", "kfd", "dxg")


def gpu_device_nodes(dev: Path = Path("/dev")) -> bool:
    """Whether a GPU driver's device node exists. Without one no backend can see a GPU, and
    asking costs no TensorFlow import (5 s and 0.7 GB, which the ONNX paths do without)."""
    return any(any(dev.glob(pattern)) for pattern in GPU_DEVICE_NODES)


@functools.cache
def gpu_available() -> bool:
    if not gpu_device_nodes():
        return False
    import keras

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


def parallel_batches(requested: int, *, tensorflow: bool = True) -> int:
    """How many batches a scorer runs at once: on a CPU, one per core, each on one thread.

    A tweet-sized batch spread over all cores spends much of its time synchronising the
    op threads; one op thread per batch and one batch per core does not (see model/README).
    TensorFlow takes its thread count only before it starts: when it already has (say,
    training earlier in this process) with another count, batches stay one at a time.
    ``tensorflow=False`` (ONNX Runtime: one single-threaded session run per batch) leaves
    TensorFlow unimported.
    """
    if requested == 1 or gpu_available():
        return 1
    n = requested or usable_cpus()
    if n == 1 or not tensorflow:
        return n
    import keras

    if keras.backend.backend() != "tensorflow":
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


# oneDNN's ISA levels in order (``ONEDNN_MAX_CPU_ISA`` caps the one it uses).
ONEDNN_ISAS = (
    "SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX",
    "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16",
)  # fmt: skip


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first CPU in a ``/proc/cpuinfo`` text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def native_bf16(flags: frozenset[str], max_isa: str | None = None) -> str | None:
    """``"amx_bf16"`` or ``"avx512_bf16"`` when this CPU multiplies bfloat16 in hardware.

    Both run TensorFlow's mixed bfloat16 faster than float32 (AMX about 1.6x, AVX-512-BF16
    about 1.45x on MiniLM, model/README). ``max_isa`` is ``ONEDNN_MAX_CPU_ISA``: a cap
    below an ISA hides it, as it does from oneDNN (how an AVX2 machine is simulated).
    """

    def allowed(level: str) -> bool:
        cap = (max_isa or "").upper()
        if cap not in ONEDNN_ISAS:  # unset, ALL, DEFAULT or unknown: no cap
            return True
        return ONEDNN_ISAS.index(cap) >= ONEDNN_ISAS.index(level)

    if "amx_bf16" in flags and allowed("AVX10_1_512_AMX"):
        return "amx_bf16"
    if "avx512_bf16" in flags and allowed("AVX512_CORE_BF16"):
        return "avx512_bf16"
    return None


@functools.cache
def _this_cpu() -> frozenset[str]:
    try:
        return cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def cpu_bf16() -> str | None:
    """:func:`native_bf16` of this machine (``/proc/cpuinfo``, ``ONEDNN_MAX_CPU_ISA``)."""
    return native_bf16(_this_cpu(), os.environ.get("ONEDNN_MAX_CPU_ISA"))


def cpu_has_amx_bf16() -> bool:
    return cpu_bf16() == "amx_bf16"


def training_policy(precision: str) -> str:
    """Dtype policy for training: bfloat16 where the hardware multiplies it natively."""
    if precision == "auto":
        return "mixed_bfloat16" if gpu_available() or cpu_has_amx_bf16() else "float32"
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def resolve_policy(precision: str, *, gpu: bool, bf16: str | None) -> str:
    """The Keras dtype policy for a ``model.precision`` setting on a machine so described."""
    if precision == "auto":
        return "mixed_float16" if gpu else "mixed_bfloat16" if bf16 else "float32"
    if precision == "float16" and not gpu:
        log.info("float16 asked for without a GPU; using float32")
        return "float32"
    return _POLICIES[precision]


def dtype_policy(precision: str) -> str:
    """The Keras dtype policy for a ``model.precision`` setting on this machine."""
    return resolve_policy(precision, gpu=gpu_available(), bf16=cpu_bf16())


@dataclass(frozen=True)
class ScoringPlan:
    """Which runtime scores, in which precision, and why (logged at load, on the worker's
    ``finpulse_model_info`` metric, in the bench JSON)."""

    path: str  # "tensorflow" | "onnx" (ONNX Runtime fp32) | "onnx-int8"
    dtype_policy: str  # TensorFlow's Keras policy; float32 for the ONNX paths
    reason: str

    def describe(self) -> dict[str, str]:
        return {"path": self.path, "dtype_policy": self.dtype_policy, "reason": self.reason}


def cpu_int8_dot(flags: frozenset[str]) -> bool:
    """VNNI (AVX-512 or AVX): int8 dot products without the 16-bit saturation of plain AVX2."""
    return bool(flags & {"avx512_vnni", "avx_vnni"})


def choose_path(
    path: str,
    precision: str,
    *,
    gpu: bool,
    bf16: str | None,
    vnni: bool = False,
    onnx_available: bool = True,
) -> ScoringPlan:
    """The scoring path for ``model.scoring_path`` on a machine described by the flags.

    ``auto``: TensorFlow on a GPU, and in bfloat16 on a CPU with AMX. On any other CPU with
    VNNI, ONNX Runtime int8 (SmoothQuant, outlier channels apart, :mod:`model.ort`), the
    fastest path that keeps labels within 1 % (model/README, session 9, 2,000 tweets):
    2.13x TensorFlow float32's stream batches with TensorFlow capped to AVX2; on
    AVX-512-BF16 2.0x float32 where TensorFlow's bfloat16 gave 1.42x, at 0.70 % of topic
    labels changed (bfloat16: 0.05 %). Without VNNI ONNX Runtime's int8 kernels are other
    (saturating) ones, not measured, and its fp32 was no faster: TensorFlow, in bfloat16
    where the CPU has it. ``precision`` other than ``auto`` asks for TensorFlow in that
    precision. An explicit path is kept, but ONNX needs onnxruntime and a CPU.
    """
    policy = resolve_policy(precision, gpu=gpu, bf16=bf16)
    if path == "auto":
        if gpu:
            return ScoringPlan("tensorflow", policy, "GPU")
        if bf16 == "amx_bf16" and precision == "auto":
            return ScoringPlan("tensorflow", policy, "CPU with AMX: TensorFlow bfloat16")
        if precision == "auto" and vnni and onnx_available:
            why = f"CPU with VNNI, no AMX{f' ({bf16})' if bf16 else ''}: int8 SmoothQuant"
            return ScoringPlan("onnx-int8", "float32", why)
        if precision != "auto":
            why = f"precision {precision}"
        elif not onnx_available:
            why = "onnxruntime not installed"
        else:
            why = "no VNNI"
        return ScoringPlan("tensorflow", policy, f"{why}: TensorFlow {policy}")
    if path != "tensorflow" and (gpu or not onnx_available):
        why = "a GPU" if gpu else "onnxruntime not installed"
        return ScoringPlan("tensorflow", policy, f"{path} asked for, but {why}")
    if path == "tensorflow":
        return ScoringPlan(path, policy, "model.scoring_path")
    return ScoringPlan(path, "float32", "model.scoring_path")


def scoring_plan(path: str, precision: str) -> ScoringPlan:
    """:func:`choose_path` for this machine."""
    import importlib.util

    return choose_path(
        path,
        precision,
        gpu=gpu_available(),
        bf16=cpu_bf16(),
        vnni=cpu_int8_dot(_this_cpu()),
        onnx_available=importlib.util.find_spec("onnxruntime") is not None,
    )
