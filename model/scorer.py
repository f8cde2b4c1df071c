"""Batched inference: texts in, topic and sentiment with their probabilities out.

Texts are tokenised without padding, sorted by length and cut into batches padded only
to their bucket length; one compiled graph serves every bucket. Batches run on the
scorer's own pool of threads, one per core on a CPU (``model.cpu_parallel_batches``), so
a stream worker may call ``predict`` from several threads (``asyncio.to_thread``): their
batches share the pool while the event loop keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from model.config import ModelSettings
from model.data import Labeled
from model.device import gpu_available, parallel_batches, scoring_plan
from model.encoder import load_tokenizer, run_batched, tokenize
from model.metrics import task_metrics
from model.registry import ModelInfo, Registry

log = logging.getLogger(__name__)
GRAPH_CACHE = ".onnx-cache"  # in the registry directory: the ONNX paths' built graphs


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
        self.plan = scoring_plan(settings.scoring_path, settings.precision)
        tensorflow = self.plan.path == "tensorflow"
        # before TensorFlow starts; the ONNX paths never start it once their graph is cached
        self.parallel = parallel_batches(settings.cpu_parallel_batches, tensorflow=tensorflow)
        if tensorflow:
            self._forward, self.tokenizer, meta = self._load_tensorflow(info.path)
        else:
            meta = info.meta
            self._forward = self._load_onnx(info.path, settings.registry_dir / GRAPH_CACHE)
            self.tokenizer = load_tokenizer(info.path, meta["max_length"])
        self.labels: dict[str, list[str]] = meta["labels"]
        self.max_length: int = meta["max_length"]
        self.batch_size = settings.gpu_batch_size if gpu_available() else settings.batch_size
        log.info("scoring %s: %s (%s)", self.version, self.plan.path, self.plan.reason)
        self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="finpulse-score")

    def _load_tensorflow(self, path: Path) -> tuple[Any, Tokenizer, dict[str, Any]]:
        """The compiled Keras forward function, the tokenizer and ``model.json``."""
        from model.artifact import load_network
        from model.network import compile_forward

        network, tokenizer, meta = load_network(path, dtype=self.plan.dtype_policy)
        return compile_forward(network.model, softmax=True), tokenizer, meta

    def _load_onnx(self, path: Path, cache: Path) -> Any:
        """ONNX Runtime's forward function, from the cached graph or one built now (in a
        child process: this one never imports TensorFlow)."""
        from model import ort

        file = ort.graph_file(path, self.plan.path, cache)
        graph = ort.cached_graph(file, lambda: ort.build_apart(path, self.plan.path))
        return ort.forward(ort.session(graph))

    @property
    def scoring(self) -> dict[str, Any]:
        """The scoring path and why it was chosen, with the batch parallelism (for the API)."""
        return {**self.plan.describe(), "parallel_batches": self.parallel}

    @classmethod
    def load(cls, ref_or_path: str | Path, settings: ModelSettings) -> Scorer:
        """``champion``, ``latest``, a registry version or a model directory."""
        return cls(Registry.of(settings).resolve(ref_or_path), settings)

    def close(self) -> None:
        """Stop the batch threads (a scorer used once, such as a training teacher)."""
        self._pool.shutdown()

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
        return run_batched(
            self._forward,
            tokenize(self.tokenizer, texts),
            batch_size=batch_size or self.batch_size,
            max_length=self.max_length,
            fixed_length=fixed_length,
            progress=progress,
            mapper=self._pool.map,
            parts=self.parallel,
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
