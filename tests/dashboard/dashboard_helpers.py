"""Helpers for the dashboard tests: a scored news history with a negative episode.

The history goes through the real aggregation (``RateAggregator``) and the real alert
engine, so the alerts the API serves are the ones the pipeline would raise.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from finpulse.contracts import Article, ScoredArticle
from stream.aggregate import RateAggregator

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WINDOW_S = 300
TOPICS = ("Earnings", "Macro", "Markets")


def scored(
    i: int, minutes: float, sentiment: str, topic: str, title: str, tickers: list[str]
) -> ScoredArticle:
    neg = 0.9 if sentiment == "negative" else 0.05
    probs = {"negative": neg, "neutral": 0.9 - neg if neg < 0.9 else 0.05, "positive": 0.05}
    probs[sentiment] = max(probs[sentiment], 0.8)
    article = Article.create(
        source="wire" if i % 3 else "newsdesk",
        url=f"https://news.example.com/{i}",
        title=title,
        body=f"Body of story {i}.",
        published_at=T0 + timedelta(minutes=minutes),
        fetched_at=T0 + timedelta(minutes=minutes, seconds=3),
        tickers=tickers,
    )
    return ScoredArticle.from_article(
        article,
        topic=topic,
        topic_probs={topic: 0.85, "Macro" if topic != "Macro" else "Markets": 0.15},
        sentiment=sentiment,
        sentiment_probs=probs,
        model_version="test-v1",
    )


def history(windows: int = 40, per_window: int = 10, burst_from: int = 30) -> list[ScoredArticle]:
    """``windows`` 5-minute windows; from ``burst_from`` on, ACME earnings turn negative."""
    out = []
    i = 0
    for w in range(windows):
        for j in range(per_window):
            i += 1
            minutes = w * WINDOW_S / 60 + j * (WINDOW_S / 60) / per_window
            burst = w >= burst_from and j < per_window - 1
            if burst:
                out.append(
                    scored(i, minutes, "negative", "Earnings",
                           f"ACME profit warning {i}: guidance cut, shares plunge", ["ACME"])
                )  # fmt: skip
            else:
                sentiment = "negative" if j == 0 else ("positive" if j % 3 == 0 else "neutral")
                topic = TOPICS[j % len(TOPICS)]
                out.append(scored(i, minutes, sentiment, topic, f"Market update {i}", ["MSFT"]))
    return out


def feed(articles: list[ScoredArticle], store, engine) -> list:
    """Index like the runner does: store, aggregate, alert; returns the alerts raised."""
    agg = RateAggregator(WINDOW_S, evidence_size=5)
    raised = []
    for start in range(0, len(articles), 10):
        batch = articles[start : start + 10]
        store.index(batch)
        for window in agg.add(batch):
            raised += engine.process(window, now=window.end)
    return raised


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
