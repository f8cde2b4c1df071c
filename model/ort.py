"""Scoring with ONNX Runtime: the network exported by :mod:`model.onnx_export`, fp32 or int8.

Off AMX TensorFlow runs float32, or bfloat16 at about 1.4x where AVX-512-BF16 exists; ONNX
Runtime's fused attention and LayerNorm kernels run the same function in fewer, larger
steps, and its int8 with VNNI about 2x TensorFlow float32 (model/README). ``int8`` quantises
the encoder's matrix products dynamically (per-channel weights, activations quantised per
batch) after SmoothQuant scaling (each activation channel divided by a factor its weight row
is multiplied by, from 512 shipped training tweets). The feed-forward output denses multiply
their few outlier input channels apart in float32 (:data:`OUTLIER_CHANNELS`); the task heads
stay float32 (:data:`INT8_KEEP_FP32`).
Each session uses one op thread: the scorer runs one batch per core, as it does with
TensorFlow (``model.cpu_parallel_batches``).
The built graph is cached per model (:func:`graph_file`): a later load or hot reload of the
same model reads it and needs neither TensorFlow nor the calibration.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from model import onnx_export

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from model.network import Network

# Nodes of the exported graph that int8 leaves in float32 (names end so, see onnx_export):
# the task heads and the outlier-channel products below.
INT8_KEEP_FP32 = ("topic_head", "sentiment_head", onnx_export.OUTLIER_SUFFIX)
# The feed-forward output denses' input (after GELU) has the widest range: quantised whole,
# with SmoothQuant, 3.6 / 2.3 % of topic / sentiment labels changed against TensorFlow
# float32 (2,000 validation tweets, champion 20261203T094514-lora); kept in float32,
# 0.85 / 0.45 %, but they are a third of the encoder's multiply-adds and int8 ran 1.66-1.75x
# TensorFlow (AVX2). Multiplying apart, in float32, the 32 of their 1,536 input channels with
# the largest calibration max|x| (LLM.int8()'s decomposition) and the rest in int8 gives
# 0.85 / 0.45 % at 2.03-2.32x (k = 8-64: 0.85-1.25 % topic; model/README).
OUTLIER_CHANNELS = 32
OUTLIER_DENSES = ("feedforward_output_dense",)
CALIBRATION_TEXTS = 512
CACHE_KEEP = 3  # graphs kept in the cache: the champion, its predecessor and a challenger

log = logging.getLogger(__name__)


def graph_file(model_dir: Path, path: str, cache_dir: Path) -> Path:
    """Where the ``path`` graph of the model in ``model_dir`` is cached.

    Named by a hash of everything the graph is made from: the model's files (``model.json``
    names an adapter's base by the sha256 of its weights), the code that builds it and ONNX
    Runtime's version. A changed model or a new release gets a new name, never a stale graph.
    """
    from importlib.metadata import version

    digest = hashlib.sha256(f"{path}\0{version('onnxruntime')}".encode())
    for source in (Path(__file__), Path(onnx_export.__file__)):
        digest.update(source.read_bytes())
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(file.relative_to(model_dir).as_posix().encode())
        with file.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return cache_dir / f"{path}-{digest.hexdigest()[:32]}.onnx"


def cached_graph(file: Path, build: Callable[[], bytes]) -> Path | bytes:
    """The graph cached at ``file``, built and written first when missing (only the
    :data:`CACHE_KEEP` most recently used stay). Where the cache cannot be written, the
    built graph itself: the scorer works, rebuilding at each load."""
    if file.is_file():
        with contextlib.suppress(OSError):  # a read-only cache still serves
            os.utime(file)  # most recently used: pruned last
        return file
    graph = build()
    tmp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".building-", suffix=".onnx")
        with os.fdopen(fd, "wb") as fh:
            fh.write(graph)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from workers running as others
        os.replace(tmp, file)
    except OSError as exc:
        log.warning(
            "cannot cache the ONNX graph in %s (%s); rebuilt at each load", file.parent, exc
        )
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return graph
    cached = sorted(file.parent.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in cached[CACHE_KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
    return file


def quantize_int8(
    model: onnx.ModelProto | Path, keep_fp32: tuple[str, ...] = INT8_KEEP_FP32
) -> bytes:
    """Dynamic int8 quantisation of MatMul and Attention weights, per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        if isinstance(model, Path):
            src = model
            model = onnx.load(src, load_external_data=False)
        else:
            onnx.save(model, src)
        keep = [n.name for n in model.graph.node if n.name.endswith(keep_fp32)]
        del model  # quantize_dynamic reads its own copy
        root = logging.getLogger()  # it advises, on the root logger, a pre-pass int8 here skips

        def advice(record: logging.LogRecord) -> bool:
            return "run pre-processing before quantization" not in record.getMessage()

        root.addFilter(advice)
        try:
            quantize_dynamic(
                src,
                dst,
                per_channel=True,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Attention"],
                nodes_to_exclude=keep,
                # shape inference does not type the outputs of ORT's own (com.microsoft) ops
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            root.removeFilter(advice)
        return dst.read_bytes()


def calibration_batches(
    tokenizer: Tokenizer, max_length: int, n: int = CALIBRATION_TEXTS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed sample of ``n`` training tweets of the shipped data, padded per length bucket."""
    from model.config import DEFAULT_DATA_FILES
    from model.data import SHIPPED_DATA, load_split
    from model.encoder import length_batches, pad, tokenize

    train = load_split(SHIPPED_DATA, DEFAULT_DATA_FILES, "train")
    texts = [x for labeled in train.values() for x in labeled.texts]
    pick = np.random.default_rng(1).permutation(len(texts))[:n]
    ids = tokenize(tokenizer, [texts[i] for i in pick])
    lengths = np.array([len(x) for x in ids])
    return [pad([ids[i] for i in b], max_length) for b in length_batches(lengths, 64)]


def build_graph(model_dir: Path, path: str) -> bytes:
    """The ``path`` graph (``onnx`` or ``onnx-int8``) of the model in ``model_dir``:
    TensorFlow loads its Keras weights, int8 is calibrated and quantised."""
    from model.artifact import load_network

    network, tokenizer, meta = load_network(model_dir, dtype="float32")
    if path == "onnx-int8":
        with tempfile.TemporaryDirectory() as tmp:
            smoothed = smoothed_graph(network, meta, tokenizer, Path(tmp) / "fp32.onnx")
            del network  # each copy of the weights goes before the next is made
            return quantize_int8(smoothed)
    graph = onnx_export.export(network, meta["labels"], normalize=meta["normalize"])
    del network
    return graph.SerializeToString()


def build_apart(model_dir: Path, path: str) -> bytes:
    """:func:`build_graph` in a child process, which takes TensorFlow and the copies of the
    weights (about 1.5 GB at the peak) with it when it ends: the scorer's process stays at
    ONNX Runtime's size (model/README) for its whole life, not only after a restart."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    log.info("building the %s graph of %s (once per model and release)", path, model_dir.name)
    context = multiprocessing.get_context("spawn")  # nothing of this process's state
    with ProcessPoolExecutor(1, mp_context=context) as child:
        return child.submit(build_graph, model_dir, path).result()


def smoothed_graph(
    network: Network, meta: dict[str, Any], tokenizer: Tokenizer, path: Path
) -> Path:
    """Write the network with SmoothQuant scales and outlier channels to ``path``, for int8.

    Calibration runs the fp32 graph on :func:`calibration_batches` (about 10-20 s on 2
    cores, with the quantisation). Written to a file, so the caller can drop the network
    before quantising: one copy of the weights at a time (the worker's peak RSS).
    """
    graph = onnx_export.export(network, meta["labels"], normalize=meta["normalize"])
    peaks = activation_peaks(graph, calibration_batches(tokenizer, meta["max_length"]))
    scales = smoothing_scales(graph, peaks)
    del graph
    smoothed = onnx_export.export(
        network,
        meta["labels"],
        normalize=meta["normalize"],
        smooth=scales,
        outliers=outlier_channels(peaks),
    )
    onnx.save(smoothed, path)
    return path


def session(model: onnx.ModelProto | bytes | Path, *, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations, ``threads`` op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if isinstance(model, Path):
        data: str | bytes = str(model)
    else:
        data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def forward(sess: Any) -> Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]:
    """``(token_ids, padding_mask) -> {task: probabilities}``, like the TensorFlow graph."""
    names = [o.name for o in sess.get_outputs()]

    def run(token_ids: np.ndarray, padding_mask: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"token_ids": token_ids.astype(np.int32), "padding_mask": padding_mask}
        return dict(zip(names, sess.run(names, feeds), strict=True))

    return run


def activation_peaks(
    model: onnx.ModelProto,
    batches: list[tuple[np.ndarray, np.ndarray]],
    skip: tuple[str, ...] = ("_head",),
) -> dict[str, np.ndarray]:
    """Per encoder Attention / MatMul node, each input channel's largest ``|x|`` on ``batches``.

    An fp32 run with those inputs as extra outputs, taken off the graph again.
    """
    from onnx import helper

    weights = {t.name for t in model.graph.initializer}
    nodes = [
        n
        for n in model.graph.node
        if n.op_type in ("Attention", "MatMul")
        and n.input[1] in weights
        and not n.name.endswith(skip)
    ]
    outputs = len(model.graph.output)
    for name in {n.input[0] for n in nodes}:
        model.graph.output.append(helper.make_empty_tensor_value_info(name))
    from model.device import usable_cpus

    sess = session(model, threads=usable_cpus())  # the same peaks as one thread, in half the time
    del model.graph.output[outputs:]
    names = [n.input[0] for n in nodes]
    peak: dict[str, np.ndarray] = {}
    for token_ids, padding_mask in batches:
        feeds = {"token_ids": token_ids.astype(np.int32), "padding_mask": padding_mask}
        for name, value in zip(names, sess.run(names, feeds), strict=True):
            m = np.abs(value).reshape(-1, value.shape[-1]).max(0)
            peak[name] = np.maximum(peak.get(name, m), m)
    return {n.name: peak[n.input[0]] for n in nodes}


def smoothing_scales(
    model: onnx.ModelProto, peaks: dict[str, np.ndarray], alpha: float = 0.5
) -> dict[str, np.ndarray]:
    """SmoothQuant scales of the nodes in ``peaks``: ``max|x_j|^a / max|W_j|^(1-a)``.

    ``max|x_j|`` from :func:`activation_peaks`, ``max|W_j|`` that of the weight row it
    multiplies.
    """
    from onnx import numpy_helper

    weights = {t.name: t for t in model.graph.initializer}
    scales = {}
    for n in model.graph.node:
        if n.name in peaks:
            rows = np.abs(numpy_helper.to_array(weights[n.input[1]])).max(1)
            s = peaks[n.name] ** alpha / np.maximum(rows, 1e-5) ** (1 - alpha)
            scales[n.name] = np.clip(s, 1e-2, 1e2).astype(np.float32)
    return scales


def outlier_channels(
    peaks: dict[str, np.ndarray],
    k: int = OUTLIER_CHANNELS,
    denses: tuple[str, ...] = OUTLIER_DENSES,
) -> dict[str, np.ndarray]:
    """The ``k`` input channels with the largest ``max|x|`` of each of ``denses``, ascending.

    They set the per-batch activation range of int8; multiplied apart in float32
    (``onnx_export.export(outliers=...)``), the other channels keep their precision.
    """
    return {
        name: np.sort(np.argsort(-peak, kind="stable")[:k]).astype(np.int64)
        for name, peak in peaks.items()
        if name.endswith(denses)
    }
