"""Batch scoring with hot model reload: Articles in, ScoredArticles (tagged with the model) out.

The drivers call :meth:`BatchScorer.score` in a worker thread (``asyncio.to_thread``): model
inference and model loading are CPU-heavy and must never block the event loop. Between
batches it asks the model source for the champion (at most every ``check_every_s``) and
swaps models without a restart; a model that fails to load is logged and the old one kept.

>>> class Echo:
...     version = "v1"
...     def predict(self, texts):
...         return [Prediction("markets", {"markets": 1.0}, "neutral",
...                            {"negative": 0.1, "neutral": 0.8, "positive": 0.1}) for _ in texts]
>>> class Fixed:
...     def champion_version(self): return "v1"
...     def load(self, version): return Echo()
>>> from prometheus_client import CollectorRegistry
>>> from finpulse.contracts import Article
>>> from datetime import datetime, UTC
>>> scorer = BatchScorer(Fixed(), StreamMetrics(CollectorRegistry()))
>>> a = Article.create(source="wire", title="Calm day", guid="1",
...                    published_at=datetime(2026, 1, 2, tzinfo=UTC))
>>> result = scorer.score([a])
>>> result.scored[0].model_version, result.scored[0].sentiment.value, result.failed
('v1', 'neutral', [])
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from finpulse.contracts import Article, ScoredArticle
from stream.metrics import StreamMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """What a scorer says about one text (the shape of ``model.scorer.Prediction``)."""

    topic: str
    topic_probs: Mapping[str, float]
    sentiment: str
    sentiment_probs: Mapping[str, float]


class Scorer(Protocol):
    version: str

    def predict(self, texts: Sequence[str]) -> Sequence[Any]: ...


class ModelSource(Protocol):
    """Where models come from: the registry's champion, or one pinned model."""

    def champion_version(self) -> str | None: ...

    def load(self, version: str) -> Scorer: ...


class NoModelError(RuntimeError):
    """There is no model to score with; the message says how to get one."""


@dataclass
class ScoringResult:
    scored: list[ScoredArticle] = field(default_factory=list)
    failed: list[tuple[Article, str]] = field(default_factory=list)  # (article, error)


class BatchScorer:
    def __init__(
        self,
        source: ModelSource,
        metrics: StreamMetrics,
        *,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self.metrics = source, metrics
        self.check_every_s, self.clock = check_every_s, clock
        self.scorer: Scorer | None = None
        self._ref: str | None = None  # what the source named; a pinned path differs from version
        self._checked_at = float("-inf")
        self._refreshing = threading.Lock()  # batches scored concurrently: one swap at a time

    @property
    def version(self) -> str | None:
        return self.scorer.version if self.scorer else None

    def refresh(self, force: bool = False) -> bool:
        """Switch to the registry's champion if it changed; True when the model was swapped."""
        with self._refreshing:
            return self._refresh(force)

    def _refresh(self, force: bool) -> bool:
        now = self.clock()
        if not force and self.scorer is not None and now - self._checked_at < self.check_every_s:
            return False
        self._checked_at = now
        try:
            wanted = self.source.champion_version()
        except Exception:
            log.exception("could not read the champion model; keeping %s", self.version)
            return False
        if wanted is None or wanted == self._ref:
            if self.scorer is None:
                raise NoModelError(
                    "no champion model in the registry: train and promote one "
                    "(see `finpulse model --help`) or pin one with --model"
                )
            return False
        try:
            scorer = self.source.load(wanted)
        except Exception:
            if self.scorer is None:
                raise
            log.exception("loading model %s failed; keeping %s", wanted, self.version)
            return False
        log.info("scoring with model %s (was %s)", scorer.version, self.version)
        self.scorer, self._ref = scorer, wanted
        self.metrics.set_model(scorer.version, getattr(scorer, "scoring", None))
        return True

    def score(self, articles: Sequence[Article]) -> ScoringResult:
        """Score one batch; an article the model cannot score is returned in ``failed``."""
        self.refresh()
        assert self.scorer is not None  # refresh raises when there is none
        scorer, result = self.scorer, ScoringResult()
        if not articles:
            return result
        started = time.perf_counter()
        try:
            predictions = list(scorer.predict([a.text for a in articles]))
            if len(predictions) != len(articles):
                raise ValueError(f"{len(predictions)} predictions for {len(articles)} texts")
            pairs = list(zip(articles, predictions, strict=True))
        except Exception:
            log.exception("scoring a batch of %d failed; scoring one by one", len(articles))
            pairs = self._one_by_one(scorer, articles, result)
        self.metrics.latency.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(articles))
        for article, p in pairs:
            try:
                result.scored.append(
                    ScoredArticle.from_article(
                        article,
                        topic=p.topic,
                        topic_probs=dict(p.topic_probs),
                        sentiment=p.sentiment,
                        sentiment_probs=dict(p.sentiment_probs),
                        model_version=scorer.version,
                    )
                )
            except Exception as exc:  # a prediction that breaks the contract
                result.failed.append((article, f"invalid prediction: {exc}"))
        self.metrics.observe_scored(result.scored)
        return result

    @staticmethod
    def _one_by_one(
        scorer: Scorer, articles: Sequence[Article], result: ScoringResult
    ) -> list[tuple[Article, Any]]:
        pairs = []
        for article in articles:
            try:
                pairs.append((article, scorer.predict([article.text])[0]))
            except Exception as exc:
                result.failed.append((article, f"{type(exc).__name__}: {exc}"))
        return pairs


class RegistryModels:
    """The model registry as a :class:`ModelSource`; ``pin`` fixes one model ref or path."""

    def __init__(self, model_settings: Any, pin: str | None = None) -> None:
        from model.registry import Registry  # the model package is optional for the core

        self.settings, self.pin = model_settings, pin
        self.registry = Registry(model_settings.registry_dir)

    def champion_version(self) -> str | None:
        return self.pin or self.registry.champion_version()

    def load(self, version: str) -> Scorer:
        from model.scorer import Scorer as ModelScorer

        return ModelScorer.load(version, self.settings)
