"""One multi-task network: a shared encoder, mean pooling and a linear head per task.

All four training methods produce this same shape, so one scorer runs them all: zero- and
few-shot models set ``normalize`` and put scaled label embeddings in the head kernels, which
makes their logits cosine similarities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="finpulse")
class MeanPool(keras.layers.Layer):
    """Average of the token vectors a padding mask keeps."""

    def call(self, sequence: Any, mask: Any) -> Any:
        weights = ops.cast(ops.expand_dims(mask, -1), sequence.dtype)
        total = ops.sum(sequence * weights, axis=1)
        return total / ops.maximum(ops.sum(weights, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="finpulse")
class L2Normalize(keras.layers.Layer):
    def call(self, x: Any) -> Any:
        return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-6)


@dataclass
class Network:
    backbone: keras.Model
    model: keras.Model  # inputs -> {task: logits}
    embedder: keras.Model  # inputs -> pooled (normalised if the heads expect it)
    heads: dict[str, keras.layers.Dense]

    def head_weights(self) -> dict[str, np.ndarray]:
        out = {}
        for task, head in self.heads.items():
            kernel, bias = head.get_weights()
            out[f"{task}_kernel"], out[f"{task}_bias"] = kernel, bias
        return out

    def set_head_weights(self, weights: dict[str, np.ndarray]) -> None:
        for task, head in self.heads.items():
            head.set_weights([weights[f"{task}_kernel"], weights[f"{task}_bias"]])


def build_network(
    backbone: keras.Model, labels: dict[str, list[str]], *, dropout: float, normalize: bool
) -> Network:
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
    feeds = {"token_ids": token_ids, "padding_mask": padding_mask}
    names = set(backbone.input) if isinstance(backbone.input, dict) else {"token_ids"}
    if "segment_ids" in names:
        feeds["segment_ids"] = ops.zeros_like(token_ids)
    out = backbone({k: v for k, v in feeds.items() if k in names})
    sequence = out["sequence_output"] if isinstance(out, dict) else out
    pooled = MeanPool(dtype="float32", name="mean_pool")(
        ops.cast(sequence, "float32"), padding_mask
    )
    if normalize:
        pooled = L2Normalize(name="l2_normalize")(pooled)
    hidden = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    heads = {
        task: keras.layers.Dense(len(names_), name=f"{task}_head", dtype="float32")
        for task, names_ in labels.items()
    }
    inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
    model = keras.Model(inputs, {t: h(hidden) for t, h in heads.items()}, name="finpulse")
    embedder = keras.Model(inputs, pooled, name="finpulse_embedder")
    return Network(backbone, model, embedder, heads)


def compile_forward(
    model: keras.Model, *, softmax: bool = False
) -> Callable[[np.ndarray, np.ndarray], Any]:
    """``(token_ids, padding_mask) -> numpy outputs``, traced once for every batch shape.

    On TensorFlow a ``tf.function`` with unknown batch and length dimensions compiles one
    graph for all buckets; other backends use Keras' own compiled ``predict_on_batch``.
    """

    def finish(out: Any) -> Any:
        if softmax:
            out = {k: ops.softmax(ops.cast(v, "float32"), axis=-1) for k, v in out.items()}
        return out

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = [
            tf.TensorSpec([None, None], tf.int32, name="token_ids"),
            tf.TensorSpec([None, None], tf.bool, name="padding_mask"),
        ]

        @tf.function(input_signature=spec, autograph=False)
        def graph(token_ids: Any, padding_mask: Any) -> Any:
            return finish(model({"token_ids": token_ids, "padding_mask": padding_mask}))

        return lambda ids, mask: keras.tree.map_structure(np.asarray, graph(ids, mask))

    def compiled(ids: np.ndarray, mask: np.ndarray) -> Any:
        # XLA compiles a program per input shape (measured: 3 s each on an H200): round rows
        # and length up to powers of two, so any stream of batches reuses a few programs.
        rows, width = ids.shape
        grow = (max(8, _pow2(rows)) - rows, max(16, _pow2(width)) - width)
        if any(grow):
            ids, mask = (
                np.pad(ids, ((0, grow[0]), (0, grow[1]))),
                np.pad(mask, ((0, grow[0]), (0, grow[1]))),
            )
        out = model.predict_on_batch({"token_ids": ids, "padding_mask": mask})
        return keras.tree.map_structure(lambda a: np.asarray(a)[:rows], finish(out))

    return compiled


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()
