"""Near-duplicate detection: MinHash signatures over title + lead, banded LSH lookup.

A wire story republished with small edits ("UPDATE:", a source tag, a changed word, a
truncated lead) shares most of its character shingles with the first copy; two different
stories share few. LSH finds candidates in O(1); the estimated Jaccard similarity of the
signatures decides. Measured precision and recall are in ingest/README.md.

Templated posts ("Edited transcript of KNDI earnings call, 12-Nov-19") share most shingles
with other companies' posts; a guard keeps them apart: the numbers and cashtags of one text
must be a subset of the other's (a republish adds or drops them, it does not change them).

>>> h, idx = MinHasher(), LSHIndex(threshold=0.5, num_perm=128)
>>> def add(i, t): idx.insert(i, h.signature(near_dup_text(t)), 0.0, marks(near_dup_text(t)))
>>> def ask(t): return idx.query(h.signature(near_dup_text(t)), 60.0, marks(near_dup_text(t)))
>>> add("a", "Fed raises rates by 25bp, signals pause")
>>> ask("UPDATE 1-Fed raises rates by 25bp, signals a pause - Reuters")
'a'
>>> ask("Oil slides as OPEC+ weighs output hike") is None
True
>>> add("t", "Edited Transcript of KNDI earnings conference call 12-Nov-19 1:00pm GMT")
>>> ask("Edited Transcript of FALC earnings conference call 19-Nov-19 9:30pm GMT") is None
True
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict

import numpy as np

_PRIME = np.uint64(4294967311)  # smallest prime above 2**32: a*x+b stays below 2**64
_URL = re.compile(r"https?://\S+|www\.\S+")
_NON_WORD = re.compile(r"[^\w$]+")
LEAD_CHARS = 300


def near_dup_text(title: str, body: str = "") -> str:
    """What two copies of one story share: title and lead, case-folded, no links or punctuation.

    >>> near_dup_text("UPDATE 1-Fed's move: rates up!", "See https://t.co/x now")
    'update 1 fed s move rates up see now'
    """
    text = f"{title} {body[:LEAD_CHARS]}".lower()
    return " ".join(_NON_WORD.sub(" ", _URL.sub(" ", text)).split())


_UPDATE = re.compile(r"^(?:update|corrected|refile)\s*\d*\s*")


def marks(text: str) -> frozenset[str]:
    """Tokens that tell two templated stories apart: numbers and cashtags (of normalised text).

    >>> sorted(marks("update 2 $kndi q3 eps 0 12 beats"))
    ['$kndi', '0', '12', 'q3']
    """
    return frozenset(
        t for t in _UPDATE.sub("", text).split() if t.startswith("$") or any(c.isdigit() for c in t)
    )


def compatible(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two texts' marks allow them to be one story: one set contains the other."""
    return a <= b or b <= a


class MinHasher:
    """MinHash of character k-shingles; ``num_perm`` uint64 values per text."""

    def __init__(self, num_perm: int = 128, shingle: int = 5, seed: int = 7) -> None:
        if num_perm < 8:
            raise ValueError(f"num_perm must be >= 8, got {num_perm}")
        if shingle < 1:
            raise ValueError(f"shingle must be >= 1, got {shingle}")
        self.num_perm, self.shingle = num_perm, shingle
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, 2**32, size=num_perm, dtype=np.uint64)
        self._b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64)

    def shingles(self, text: str) -> set[str]:
        k = self.shingle
        return {text[i : i + k] for i in range(max(1, len(text) - k + 1))}

    def signature(self, text: str) -> np.ndarray:
        """Signature of already-normalised ``text`` (see :func:`near_dup_text`)."""
        hashes = np.fromiter(
            (
                int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little")
                for s in self.shingles(text)
            ),
            dtype=np.uint64,
        )
        return ((np.outer(hashes, self._a) + self._b) % _PRIME).min(axis=0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of the two texts behind two signatures."""
    return float(np.mean(a == b))


def bands_for(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band that still make a pair at ``threshold`` a
    candidate with probability >= 0.99; more rows means fewer dissimilar candidates.

    >>> bands_for(0.5, 128)
    (42, 3)
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= 0.99:
            return bands, rows
    return num_perm, 1


class LSHIndex:
    """Banded LSH over MinHash signatures, with a time window and exact verification."""

    def __init__(self, threshold: float, num_perm: int, window_s: float = float("inf")) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold, self.window_s = threshold, window_s
        self.bands, self.rows = bands_for(threshold, num_perm)
        self._buckets: dict[tuple[int, bytes], list[str]] = defaultdict(list)
        self._items: dict[str, tuple[np.ndarray, float, frozenset[str]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def _keys(self, sig: np.ndarray) -> list[tuple[int, bytes]]:
        r = self.rows
        return [(i, sig[i * r : (i + 1) * r].tobytes()) for i in range(self.bands)]

    def query(self, sig: np.ndarray, ts: float, marks: frozenset[str] = frozenset()) -> str | None:
        """The id of the most similar stored item within the window, if similar enough."""
        best, best_sim = None, self.threshold
        for key in self._keys(sig):
            for other in self._buckets.get(key, ()):
                other_sig, other_ts, other_marks = self._items[other]
                if abs(ts - other_ts) > self.window_s or not compatible(marks, other_marks):
                    continue
                sim = similarity(sig, other_sig)
                if sim >= best_sim:
                    best, best_sim = other, sim
        return best

    def insert(
        self, item_id: str, sig: np.ndarray, ts: float, marks: frozenset[str] = frozenset()
    ) -> None:
        if item_id in self._items:
            return
        self._items[item_id] = (sig, ts, marks)
        for key in self._keys(sig):
            self._buckets[key].append(item_id)

    def remove(self, item_id: str) -> None:
        sig, _, _ = self._items.pop(item_id, (None, 0.0, frozenset()))
        if sig is not None:
            for key in self._keys(sig):
                self._buckets[key].remove(item_id)
