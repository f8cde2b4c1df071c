"""Batched inference: texts in, topic and sentiment with their probabilities out.

Texts are tokenised without padding, sorted by length and cut into batches padded only
to their bucket length; one compiled graph serves every bucket. ``predict`` holds a lock,
so a stream worker may call it from a thread (``asyncio.to_thread``) while the event
loop keeps running.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.artifact import load_network
from model.config import ModelSettings
from model.data import Labeled
from model.device import dtype_policy, gpu_available
from model.encoder import run_batched, tokenize
from model.metrics import task_metrics
from model.network import compile_forward
from model.registry import ModelInfo, Registry


@dataclass(frozen=True)
class Prediction:
    topic: str
    topic_probs: dict[str, float]
    sentiment: str  # "negative" | "neutral" | "positive"
    sentiment_probs: dict[str, float]


class Scorer:
    def __init__(self, info: ModelInfo, settings: ModelSettings) -> None:
        self.info = info
        self.version: str = info.version
        network, self.tokenizer, meta = load_network(
            info.path, dtype=dtype_policy(settings.precision)
        )
        self.labels: dict[str, list[str]] = meta["labels"]
        self.max_length: int = meta["max_length"]
        self.batch_size = settings.gpu_batch_size if gpu_available() else settings.batch_size
        self.network = network
        self._forward = compile_forward(network.model, softmax=True)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, ref_or_path: str | Path, settings: ModelSettings) -> Scorer:
        """``champion``, ``latest``, a registry version or a model directory."""
        return cls(Registry(settings.registry_dir).resolve(ref_or_path), settings)

    def predict_proba(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        fixed_length: int | None = None,
        progress: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Probabilities per task, rows in input order (``fixed_length``: the naive baseline)."""
        if not texts:
            return {t: np.zeros((0, len(n)), dtype=np.float32) for t, n in self.labels.items()}
        with self._lock:
            return run_batched(
                self._forward,
                tokenize(self.tokenizer, texts),
                batch_size=batch_size or self.batch_size,
                max_length=self.max_length,
                fixed_length=fixed_length,
                progress=progress,
            )

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        probs = self.predict_proba(texts)
        topics, sentiments = self.labels["topic"], self.labels["sentiment"]
        out = []
        for tp, sp in zip(probs["topic"], probs["sentiment"], strict=True):
            out.append(
                Prediction(
                    topic=topics[int(tp.argmax())],
                    topic_probs={n: round(float(p), 6) for n, p in zip(topics, tp, strict=True)},
                    sentiment=sentiments[int(sp.argmax())],
                    sentiment_probs={
                        n: round(float(p), 6) for n, p in zip(sentiments, sp, strict=True)
                    },
                )
            )
        return out

    def evaluate(self, data: Labeled, progress: str | None = None) -> dict:
        """Metrics of this model on labeled texts of one task."""
        if data.task not in self.labels:
            raise ValueError(f"this model has no {data.task!r} head")
        probs = self.predict_proba(data.texts, progress=progress)[data.task]
        return task_metrics(data.labels, probs, self.labels[data.task])
