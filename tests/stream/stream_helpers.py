"""Helpers for the stream tests: article factories, scorer and registry doubles, a webhook
(``tools.stream.sandbox.Webhook``, shared with ``finpulse bench faults``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from finpulse.contracts import Article, ScoredArticle
from stream.scoring import Prediction
from tools.stream.sandbox import Webhook  # noqa: F401  (re-exported for the tests)

T0 = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)


def make_article(i: int, title: str = "", minutes: float = 0, **fields) -> Article:
    fields.setdefault("published_at", T0 + timedelta(minutes=minutes))
    fields.setdefault("fetched_at", fields["published_at"] + timedelta(seconds=5))
    return Article.create(
        source=fields.pop("source", "wire"), guid=str(i), title=title or f"story {i}", **fields
    )


def make_scored(i: int, sentiment: str = "neutral", neg: float = 0.1, **fields) -> ScoredArticle:
    topic = fields.pop("topic", "markets")
    return ScoredArticle.from_article(
        make_article(i, **fields),
        topic=topic,
        topic_probs={topic: 0.9},
        sentiment=sentiment,
        sentiment_probs={"negative": neg, "neutral": 1 - neg, "positive": 0.0},
        model_version="v1",
    )


class KeywordScorer:
    """A test double: 'crash' or 'fraud' is negative, 'beat' positive, else neutral."""

    def __init__(self, version: str = "v1", fail_on: str | None = None) -> None:
        self.version, self.fail_on, self.calls = version, fail_on, 0

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.calls += 1
        out = []
        for t in texts:
            if self.fail_on and self.fail_on in t:
                raise RuntimeError(f"cannot score {t!r}")
            low = t.lower()
            s = (
                "negative"
                if ("crash" in low or "fraud" in low)
                else "positive"
                if "beat" in low
                else "neutral"
            )
            probs = {"negative": 0.05, "neutral": 0.05, "positive": 0.05}
            probs[s] = 0.9
            topic = "earnings" if "earnings" in low else "markets"
            out.append(Prediction(topic, {topic: 0.8}, s, probs))
        return out


class FakeModels:
    """A registry double whose champion the test can change."""

    def __init__(self, champion: str | None = "v1", **scorer_kw) -> None:
        self.champion, self.scorer_kw, self.loaded = champion, scorer_kw, []

    def champion_version(self) -> str | None:
        return self.champion

    def load(self, version: str) -> KeywordScorer:
        if version.startswith("broken"):
            raise OSError(f"model {version} is corrupt")
        self.loaded.append(version)
        return KeywordScorer(version, **self.scorer_kw)
