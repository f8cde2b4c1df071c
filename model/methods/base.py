"""What a training method is given and gives back, the registry of methods by name, and the
helpers several methods share.

A method is one function ``fit(ctx) -> Outcome`` registered with :func:`method`: it adapts
``ctx.network`` in place. :func:`model.train.train_model` builds the context, runs the
method, evaluates and saves the result, so a new method is one module in this package.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from tokenizers import Tokenizer

from model.config import ModelSettings
from model.data import Labeled
from model.device import gpu_available
from model.encoder import run_batched, tokenize
from model.metrics import combined_score, task_metrics
from model.network import Network, compile_forward


@dataclass
class Context:
    settings: ModelSettings
    network: Network
    tokenizer: Tokenizer
    labels: dict[str, list[str]]
    fit: dict[str, Labeled]
    dev: dict[str, Labeled]
    valid: dict[str, Labeled]
    epochs: int
    progress: bool

    def bar(self, desc: str) -> str | None:
        return desc if self.progress else None


@dataclass
class Outcome:
    history: list[dict[str, float]] = field(default_factory=list)
    # Validation probabilities the method already has (saves a pass of the encoder).
    valid_probs: dict[str, np.ndarray] | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    fit: Callable[[Context], Outcome]
    normalize: bool  # cosine heads (zero/few-shot) or linear heads on raw pooled vectors
    trains_encoder: bool


METHODS: dict[str, Method] = {}


def method(name: str, *, normalize: bool = False, trains_encoder: bool = False) -> Callable:
    """Register the decorated ``fit(ctx) -> Outcome`` as training method ``name``."""

    def register(fn: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        if name in METHODS:
            raise ValueError(f"training method {name!r} is already registered")
        METHODS[name] = Method(fn, normalize, trains_encoder)
        return fn

    return register


def jit() -> bool:
    """JAX needs XLA; on TensorFlow's CPU path XLA measured slower, and torch eager is fine."""
    return keras.backend.backend() == "jax"


def one_hot(data: Labeled, names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.eye(len(names), dtype=np.float32)[[index[y] for y in data.labels]]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dev_metrics(probs: dict[str, np.ndarray], ctx: Context) -> dict[str, dict]:
    return {t: task_metrics(ctx.dev[t].labels, probs[t], ctx.labels[t]) for t in ctx.dev}


def history_row(epoch: int, loss: float, dev: dict[str, dict], started: float) -> dict:
    row = {"epoch": epoch, "train_loss": round(loss, 5), "seconds": round(time.time() - started)}
    for task, m in dev.items():
        row[f"dev_{task}_accuracy"] = round(m["accuracy"], 4)
        row[f"dev_{task}_macro_f1"] = round(m["macro_f1"], 4)
    row["dev_score"] = round(combined_score(dev), 4)
    return row


def embed_all(ctx: Context, groups: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Pooled vectors of several text groups in one pass of the (frozen) encoder."""
    names, texts = [], []
    for name, group in groups.items():
        names.append((name, len(texts), len(texts) + len(group)))
        texts += group
    vectors = run_batched(
        compile_forward(ctx.network.embedder),
        tokenize(ctx.tokenizer, texts),
        batch_size=ctx.settings.gpu_batch_size if gpu_available() else ctx.settings.batch_size,
        max_length=ctx.settings.max_length,
        progress=ctx.bar(f"embedding {len(texts)} texts"),
    )
    return {name: vectors[a:b] for name, a, b in names}
