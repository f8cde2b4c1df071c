"""Negative-news rates: tumbling event-time windows per (scope, key), with evidence.

Counting is split so it can run in two places and be merged: :class:`RateCounter` turns a
batch of scored articles into *partial* :class:`RateWindow` deltas (one per scope, key and
window), and :class:`KeyWindows` folds the deltas of one (scope, key) into the running
windows it re-sends to alerting. The Kafka workers count and ship the deltas through the one
partition of ``news.rates`` to the alerter, which folds them (:meth:`RateAggregator.fold`);
the embedded runner does both in place (:meth:`RateAggregator.add`). All state converts to
plain dicts (``to_dict``/``from_dict``).

>>> from datetime import datetime, UTC
>>> from finpulse.contracts import ScoredArticle
>>> def art(i, sentiment, neg):
...     return ScoredArticle(id=str(i), source="wire", title=f"t{i}", tickers=["ACME"],
...         published_at=datetime(2026, 1, 2, 10, i, tzinfo=UTC), topic="m", topic_probs={},
...         sentiment=sentiment, sentiment_probs={"negative": neg}, model_version="v1")
>>> agg = RateAggregator(window_s=300, evidence_size=2)
>>> windows = agg.add([art(1, "negative", 0.7), art(2, "neutral", 0.1), art(3, "negative", 0.9)])
>>> w = next(w for w in windows if w.scope == "ticker")
>>> (w.key, w.start.minute, w.total, w.negative, [e.id for e in w.evidence])
('ACME', 0, 3, 2, ['3', '1'])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from finpulse.contracts import Evidence, RateWindow, Scope, ScoredArticle, Sentiment, utcnow

ScopeKey = tuple[Scope, str]
# Where a scope's keys beyond ``max_keys`` in one window are counted.
OTHER_KEY = "(other)"


def window_bounds(ts: datetime, window_s: int) -> tuple[datetime, datetime]:
    """The tumbling window (aligned to the epoch) that holds ``ts``."""
    start = datetime.fromtimestamp(int(ts.timestamp()) // window_s * window_s, UTC)
    return start, start + timedelta(seconds=window_s)


def event_time(article: ScoredArticle) -> datetime:
    """When the article happened; a publication date after the fetch is a clock error."""
    return min(article.published_at, article.fetched_at)


def top_evidence(evidence: Iterable[Evidence], size: int) -> list[Evidence]:
    """The ``size`` most negative, one per article id, ties broken by id for determinism."""
    best: dict[str, Evidence] = {}
    for e in evidence:
        if e.id not in best or e.negative_prob > best[e.id].negative_prob:
            best[e.id] = e
    return sorted(best.values(), key=lambda e: (-e.negative_prob, e.id))[:size]


def merge(a: RateWindow, b: RateWindow, evidence_size: int) -> RateWindow:
    """Two counts of the same (scope, key, window) as one."""
    if (a.scope, a.key, a.start, a.end) != (b.scope, b.key, b.start, b.end):
        raise ValueError(f"cannot merge windows of different keys: {a.key!r} {b.key!r}")
    return a.model_copy(
        update={
            "total": a.total + b.total,
            "negative": a.negative + b.negative,
            "evidence": top_evidence([*a.evidence, *b.evidence], evidence_size),
        }
    )


class RateCounter:
    """Counts a batch into per-window deltas, leaving out articles too late to matter.

    The watermark is the newest event time seen; anything older than it by more than
    ``lateness_s`` is skipped (and counted in :attr:`late`). An event time more than
    ``future_s`` ahead of the wall clock is a bad date (a story "published" in 2099): it is
    counted at that limit instead (:attr:`clamped`), so it cannot drag the watermark ahead
    and make every real article late. Each scope counts at most ``max_keys`` distinct keys
    per window; further keys go to :data:`OTHER_KEY`, so thousands of tickers cannot flood
    ``news.rates`` and the alert engine with one window each.
    """

    def __init__(
        self,
        window_s: int,
        evidence_size: int = 5,
        lateness_s: int = 3600,
        *,
        future_s: int = 300,
        max_keys: int = 1000,
    ) -> None:
        if window_s < 1:
            raise ValueError(f"window_s must be >= 1, got {window_s}")
        if evidence_size < 0 or lateness_s < 0 or future_s < 0:
            raise ValueError("evidence_size, lateness_s and future_s must be >= 0")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        self.window_s, self.evidence_size, self.lateness_s = window_s, evidence_size, lateness_s
        self.future_s, self.max_keys = future_s, max_keys
        self.watermark: datetime | None = None
        self.late = self.clamped = 0
        self._keys: dict[tuple[Scope, datetime], set[str]] = {}

    def count(
        self, articles: Sequence[ScoredArticle], now: datetime | None = None
    ) -> list[RateWindow]:
        if not articles:
            return []
        limit = (now or utcnow()) + timedelta(seconds=self.future_s)
        times = [self._event_time(a, limit) for a in articles]
        newest = max(times)
        if self.watermark is None or newest > self.watermark:
            self.watermark = newest
        horizon = self.watermark - timedelta(seconds=self.lateness_s)
        self._forget_keys_before(horizon)
        deltas: dict[tuple[Scope, str, datetime], RateWindow] = {}
        for a, ts in zip(articles, times, strict=True):
            if ts < horizon:
                self.late += 1
                continue
            start, end = window_bounds(ts, self.window_s)
            negative = a.sentiment == Sentiment.NEGATIVE
            evidence = (
                [Evidence(id=a.id, title=a.title, url=a.url, negative_prob=_neg(a))]
                if negative and self.evidence_size
                else []
            )
            one = RateWindow(
                scope=Scope.GLOBAL, key="", start=start, end=end, total=1,
                negative=int(negative), evidence=evidence,
            )  # fmt: skip
            for scope, key in a.scope_keys():
                key = self._capped(scope, key, start)
                k = (scope, key, start)
                mine = one.model_copy(update={"scope": scope, "key": key})
                deltas[k] = merge(deltas[k], mine, self.evidence_size) if k in deltas else mine
        return list(deltas.values())

    def _event_time(self, article: ScoredArticle, limit: datetime) -> datetime:
        ts = event_time(article)
        if ts > limit:
            self.clamped += 1
            return limit
        return ts

    def _capped(self, scope: Scope, key: str, start: datetime) -> str:
        if scope == Scope.GLOBAL:
            return key
        seen = self._keys.setdefault((scope, start), set())
        if key in seen:
            return key
        if len(seen) >= self.max_keys:
            return OTHER_KEY
        seen.add(key)
        return key

    def _forget_keys_before(self, horizon: datetime) -> None:
        cutoff = horizon - timedelta(seconds=self.window_s)
        for k in [k for k in self._keys if k[1] < cutoff]:
            del self._keys[k]


class KeyWindows:
    """The open windows of one (scope, key): folds deltas, re-sends the running totals."""

    def __init__(self, evidence_size: int = 5, lateness_s: int = 3600) -> None:
        self.evidence_size, self.lateness_s = evidence_size, lateness_s
        self.windows: dict[datetime, RateWindow] = {}

    def merge(self, delta: RateWindow) -> RateWindow:
        old = self.windows.get(delta.start)
        window = merge(old, delta, self.evidence_size) if old else delta
        self.windows[delta.start] = window
        newest = max(self.windows)
        horizon = newest - timedelta(seconds=self.lateness_s) - (window.end - window.start)
        self.windows = {s: w for s, w in self.windows.items() if s >= horizon}
        return window

    def to_dict(self) -> dict[str, Any]:
        return {"windows": [w.model_dump(mode="json") for w in self.windows.values()]}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any] | None, evidence_size: int = 5, lateness_s: int = 3600
    ) -> KeyWindows:
        state = cls(evidence_size, lateness_s)
        for raw in (data or {}).get("windows", []):
            w = RateWindow.model_validate(raw)
            state.windows[w.start] = w
        return state


class RateAggregator:
    """Counting and folding in one process (the embedded runner's rates)."""

    def __init__(
        self, window_s: int, evidence_size: int = 5, lateness_s: int = 3600, **limits: int
    ) -> None:
        """``limits``: :class:`RateCounter`'s ``future_s`` and ``max_keys``."""
        self.counter = RateCounter(window_s, evidence_size, lateness_s, **limits)
        self.keys: dict[ScopeKey, KeyWindows] = {}

    def add(self, articles: Sequence[ScoredArticle]) -> list[RateWindow]:
        """Count a batch; returns the updated running window of every key it touched."""
        return self.fold(self.counter.count(articles))

    def fold(self, deltas: Sequence[RateWindow]) -> list[RateWindow]:
        """Fold deltas counted elsewhere (a worker's :class:`RateCounter`) into the windows."""
        return [self._state(d.scope, d.key).merge(d) for d in deltas]

    def _state(self, scope: Scope, key: str) -> KeyWindows:
        c = self.counter
        return self.keys.setdefault((scope, key), KeyWindows(c.evidence_size, c.lateness_s))

    def to_dict(self) -> dict[str, Any]:
        wm = self.counter.watermark
        return {
            "watermark": wm.isoformat() if wm else None,
            "keys": {f"{s.value}|{k}": st.to_dict() for (s, k), st in self.keys.items()},
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        window_s: int,
        evidence_size: int = 5,
        lateness_s: int = 3600,
        **limits: int,
    ) -> RateAggregator:
        agg = cls(window_s, evidence_size, lateness_s, **limits)
        if data.get("watermark"):
            agg.counter.watermark = datetime.fromisoformat(data["watermark"])
        for name, state in data.get("keys", {}).items():
            scope, key = name.split("|", 1)
            agg.keys[(Scope(scope), key)] = KeyWindows.from_dict(state, evidence_size, lateness_s)
        return agg


def scope_partition_key(window: RateWindow) -> str:
    """The Kafka key that puts every delta of one (scope, key) on one partition."""
    return f"{window.scope.value}|{window.key}"


def _neg(article: ScoredArticle) -> float:
    return min(1.0, max(0.0, float(article.sentiment_probs.get(Sentiment.NEGATIVE.value, 0.0))))
