"""The crawler's memory across restarts (SQLite): what was delivered, near-dup signatures,
HTTP validators for conditional GET and feeds' permanent new addresses. Writes are tiny and
local, so calls are synchronous.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY, article_id TEXT NOT NULL, source TEXT NOT NULL,
    at REAL NOT NULL, repeat_of TEXT
);
CREATE TABLE IF NOT EXISTS signatures (
    article_id TEXT PRIMARY KEY, sig BLOB NOT NULL, ts REAL NOT NULL, marks TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS signatures_ts ON signatures (ts);
CREATE TABLE IF NOT EXISTS http_cache (
    url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS moved (
    url TEXT PRIMARY KEY, location TEXT NOT NULL, at REAL NOT NULL
);
"""


class StateStore:
    """One SQLite file; ``":memory:"`` for tests that need no restart."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def seen(self, keys: Iterable[str]) -> str | None:
        """The article id any of ``keys`` was delivered as, if one was."""
        for key in keys:
            row = self._db.execute("SELECT article_id FROM seen WHERE key = ?", (key,)).fetchone()
            if row:
                return row[0]
        return None

    def mark_seen(
        self,
        keys: Iterable[str],
        article_id: str,
        source: str,
        *,
        sig: np.ndarray | None = None,
        ts: float = 0.0,
        marks: frozenset[str] = frozenset(),
        repeat_of: str | None = None,
    ) -> None:
        """Record a delivered (or deliberately dropped) article, atomically."""
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?, ?)",
                [(k, article_id, source, now, repeat_of) for k in keys],
            )
            if sig is not None:
                self._db.execute(
                    "INSERT OR IGNORE INTO signatures VALUES (?, ?, ?, ?)",
                    (article_id, sig.astype(np.uint64).tobytes(), ts, " ".join(sorted(marks))),
                )

    def signatures(
        self, since_ts: float
    ) -> Iterator[tuple[str, np.ndarray, float, frozenset[str]]]:
        rows = self._db.execute(
            "SELECT article_id, sig, ts, marks FROM signatures WHERE ts >= ?", (since_ts,)
        )
        for article_id, blob, ts, marks in rows:
            yield article_id, np.frombuffer(blob, dtype=np.uint64), ts, frozenset(marks.split())

    def latest_signature_ts(self) -> float | None:
        return self._db.execute("SELECT MAX(ts) FROM signatures").fetchone()[0]

    def prune_signatures(self, before_ts: float) -> int:
        return self._db.execute("DELETE FROM signatures WHERE ts < ?", (before_ts,)).rowcount

    def validators(self, url: str) -> tuple[str | None, str | None]:
        """(ETag, Last-Modified) last returned for ``url``."""
        row = self._db.execute(
            "SELECT etag, last_modified FROM http_cache WHERE url = ?", (url,)
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def save_validators(self, url: str, etag: str | None, last_modified: str | None) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO http_cache VALUES (?, ?, ?, ?)",
            (url, etag, last_modified, time.time()),
        )

    def moved_to(self, url: str) -> str | None:
        """Where a feed at ``url`` answered it moved permanently (301/308), if it did."""
        row = self._db.execute("SELECT location FROM moved WHERE url = ?", (url,)).fetchone()
        return row[0] if row else None

    def save_moved(self, url: str, location: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO moved VALUES (?, ?, ?)", (url, location, time.time())
        )
