"""Exact and near-duplicate filtering shared by every source.

An article is *reserved* while its delivery is pending (so a copy later in the same poll is
caught) and *committed* to the store only once the sink confirms delivery: a crash between
fetch and produce leaves it unseen, so the next run produces it instead of losing it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from finpulse.contracts import Article, article_id
from ingest.neardup import LSHIndex, MinHasher, marks, near_dup_text
from ingest.state import StateStore


def dedup_keys(source: str, url: str | None, guid: str | None) -> list[str]:
    """Every identity of one item: its article id, and its source + guid when it has both."""
    keys = []
    if url:
        with contextlib.suppress(ValueError):  # a bad URL is the normaliser's to report
            keys.append(article_id(url))
    if guid:
        keys.append(article_id(source=source, guid=guid))
    return keys


@dataclass
class Verdict:
    kind: Literal["new", "exact", "near"]
    article: Article
    keys: list[str]
    repeat_of: str | None = None
    sig: np.ndarray | None = field(default=None, repr=False)
    marks: frozenset[str] = frozenset()


class Deduplicator:
    """Decides new / exact repeat / near repeat, remembering deliveries in a :class:`StateStore`.

    >>> from datetime import datetime, UTC
    >>> d = Deduplicator(StateStore(":memory:"))
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> a = Article.create(source="s", url="https://ex.com/1", title="Fed lifts rates to 5%",
    ...                    published_at=t)
    >>> v = d.check(a, guid=None); v.kind
    'new'
    >>> d.commit(v)
    >>> d.check(a, guid=None).kind
    'exact'
    >>> b = Article.create(source="s", url="https://ex.com/2",
    ...                    title="UPDATE: Fed lifts rates to 5%", published_at=t)
    >>> d.check(b, guid=None).repeat_of == a.id
    True
    """

    def __init__(
        self,
        store: StateStore,
        *,
        near: bool = True,
        threshold: float = 0.5,
        window_s: float = 72 * 3600.0,
        num_perm: int = 128,
        shingle: int = 5,
    ) -> None:
        self.store, self.near = store, near
        self.hasher = MinHasher(num_perm=num_perm, shingle=shingle)
        self.index = LSHIndex(threshold, num_perm, window_s)
        self._pending: set[str] = set()
        if near:
            latest = store.latest_signature_ts()
            if latest is not None:
                store.prune_signatures(latest - 2 * window_s)
                for aid, sig, ts, mk in store.signatures(latest - window_s):
                    self.index.insert(aid, sig, ts, mk)

    def seen(self, source: str, url: str | None, guid: str | None) -> bool:
        """Cheap pre-check before any page fetch: was this item delivered or is it pending?"""
        keys = dedup_keys(source, url, guid)
        return bool(self._pending.intersection(keys)) or self.store.seen(keys) is not None

    def check(self, article: Article, guid: str | None) -> Verdict:
        """Classify ``article``; a new one is reserved until it is committed or released."""
        keys = [article.id, *dedup_keys(article.source, None, guid)]
        if self._pending.intersection(keys) or self.store.seen(keys) is not None:
            return Verdict("exact", article, keys)
        if not self.near:
            self._pending.update(keys)
            return Verdict("new", article, keys)
        text = near_dup_text(article.title, article.body)
        # watchlist tickers join the text's numbers and cashtags in the guard
        mk = marks(text) | {f"${t.lower()}" for t in article.tickers}
        sig, ts = self.hasher.signature(text), article.published_at.timestamp()
        repeat_of = self.index.query(sig, ts, mk)
        if repeat_of is not None:
            return Verdict("near", article, keys, repeat_of=repeat_of)
        self.index.insert(article.id, sig, ts, mk)
        self._pending.update(keys)
        return Verdict("new", article, keys, sig=sig, marks=mk)

    def commit(self, verdict: Verdict) -> None:
        """Remember a delivered article, or a dropped near repeat (as a repeat of its first)."""
        a = verdict.article
        self.store.mark_seen(
            verdict.keys,
            a.id,
            a.source,
            sig=verdict.sig,
            ts=a.published_at.timestamp(),
            marks=verdict.marks,
            repeat_of=verdict.repeat_of,
        )
        self._pending.difference_update(verdict.keys)

    def release(self, verdict: Verdict) -> None:
        """Forget a reservation whose delivery failed, so a later poll tries it again."""
        self._pending.difference_update(verdict.keys)
        self.index.remove(verdict.article.id)
