"""SQLite + FTS5 store: the embedded default, one file, no service to run.

WAL mode lets the dashboard read while the runner writes; one connection guarded by a lock
serves the runner's worker threads.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from finpulse.contracts import Scope, ScoredArticle, scope_filter, utcnow
from stream.sinks.base import (
    Filters,
    IndexResult,
    RatePoint,
    SearchResult,
    Store,
    bucket_range,
    check_page,
    fill_buckets,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    topic TEXT NOT NULL,
    sentiment TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    published_at REAL NOT NULL,
    fetched_at REAL NOT NULL,
    indexed_at REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published_at);
CREATE INDEX IF NOT EXISTS articles_topic ON articles(topic, published_at);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source, published_at);
CREATE TABLE IF NOT EXISTS article_tickers (
    ticker TEXT NOT NULL,
    article INTEGER NOT NULL REFERENCES articles(rowid) ON DELETE CASCADE,
    PRIMARY KEY (ticker, article)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5(
    title, body, content='articles', content_rowid='rowid', tokenize='unicode61'
);
CREATE TRIGGER IF NOT EXISTS articles_ai AFTER INSERT ON articles BEGIN
    INSERT INTO articles_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER IF NOT EXISTS articles_au AFTER UPDATE ON articles BEGIN
    INSERT INTO articles_fts(articles_fts, rowid, title, body)
        VALUES ('delete', old.rowid, old.title, old.body);
    INSERT INTO articles_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
"""

UPSERT = """
INSERT INTO articles (id, source, topic, sentiment, title, body, published_at, fetched_at,
                      indexed_at, doc)
VALUES (:id, :source, :topic, :sentiment, :title, :body, :published_at, :fetched_at,
        :indexed_at, :doc)
ON CONFLICT(id) DO UPDATE SET
    source=excluded.source, topic=excluded.topic, sentiment=excluded.sentiment,
    title=excluded.title, body=excluded.body, published_at=excluded.published_at,
    fetched_at=excluded.fetched_at, indexed_at=excluded.indexed_at, doc=excluded.doc
RETURNING rowid
"""


def fts_query(q: str) -> str:
    """User words as an FTS5 query matching all of them; operators in ``q`` are just words.

    >>> fts_query('Apple "earnings" AND-miss*')
    '"apple" "earnings" "and" "miss"'
    """
    return " ".join(f'"{w}"' for w in re.findall(r"\w+", q.lower()))


class SqliteStore(Store):
    name = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)

    def index(self, articles: Sequence[ScoredArticle]) -> IndexResult:
        result = IndexResult()
        now = utcnow().timestamp()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for a in articles:
                    existed = self._db.execute(
                        "SELECT 1 FROM articles WHERE id = ?", (a.id,)
                    ).fetchone()
                    (rowid,) = self._db.execute(UPSERT, _row(a, now)).fetchone()
                    self._db.execute("DELETE FROM article_tickers WHERE article = ?", (rowid,))
                    self._db.executemany(
                        "INSERT INTO article_tickers (ticker, article) VALUES (?, ?)",
                        [(t, rowid) for t in a.tickers],
                    )
                    (result.updated if existed else result.created).append(a.id)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    def search(
        self, q: str = "", filters: Filters | None = None, page: int = 1, size: int = 20
    ) -> SearchResult:
        check_page(page, size)
        where, params = _where(filters or Filters())
        match = fts_query(q)
        if q.strip() and not match:  # only punctuation: nothing can match
            return SearchResult(0, [], page, size)
        if match:
            where.append("a.rowid IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?)")
            params.append(match)
        clause = " AND ".join(where) or "1"
        with self._lock:
            (total,) = self._db.execute(
                f"SELECT count(*) FROM articles a WHERE {clause}", params
            ).fetchone()
            rows = self._db.execute(
                f"SELECT a.doc FROM articles a WHERE {clause} "
                "ORDER BY a.published_at DESC, a.id LIMIT ? OFFSET ?",
                [*params, size, (page - 1) * size],
            ).fetchall()
        return SearchResult(total, [_doc(r[0]) for r in rows], page, size)

    def rates(
        self, scope: Scope, key: str, since: datetime, until: datetime, step_s: int
    ) -> list[RatePoint]:
        lo, hi = bucket_range(since, until, step_s)
        join, cond, params = "", "1", []
        match scope_filter(scope, key):
            case ("tickers", ticker):  # one row per ticker, in their own table
                join = "JOIN article_tickers t ON t.article = a.rowid"
                cond, params = "t.ticker = ?", [ticker]
            case (field, value):
                cond, params = f"a.{field} = ?", [value]
        with self._lock:
            rows = self._db.execute(
                f"SELECT CAST((a.published_at - ?) / ? AS INTEGER) AS b, count(*), "
                f"sum(a.sentiment = 'negative') FROM articles a {join} "
                f"WHERE {cond} AND a.published_at >= ? AND a.published_at < ? GROUP BY b",
                [lo, step_s, *params, float(lo), hi],
            ).fetchall()
        return fill_buckets(lo, hi, step_s, {lo + b * step_s: (n, neg) for b, n, neg in rows})

    def latest(self, n: int = 20) -> list[ScoredArticle]:
        return self.search(size=n).hits

    def get(self, article_id: str) -> ScoredArticle | None:
        with self._lock:
            row = self._db.execute(
                "SELECT doc FROM articles WHERE id = ?", (article_id,)
            ).fetchone()
        return _doc(row[0]) if row else None

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM articles").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(a: ScoredArticle, now: float) -> dict[str, Any]:
    return {
        "id": a.id,
        "source": a.source,
        "topic": a.topic,
        "sentiment": a.sentiment.value,
        "title": a.title,
        "body": a.body,
        "published_at": a.published_at.timestamp(),
        "fetched_at": a.fetched_at.timestamp(),
        "indexed_at": now,
        "doc": a.model_dump_json(),
    }


def _doc(raw: str) -> ScoredArticle:
    return ScoredArticle.model_validate_json(raw)


def _where(f: Filters) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("topic", f.topic), ("source", f.source), ("sentiment", f.sentiment)):
        if value is not None:
            where.append(f"a.{column} = ?")
            params.append(str(value))
    if f.ticker:
        where.append("a.rowid IN (SELECT article FROM article_tickers WHERE ticker = ?)")
        params.append(f.ticker)
    if f.since:
        where.append("a.published_at >= ?")
        params.append(f.since.timestamp())
    if f.until:
        where.append("a.published_at < ?")
        params.append(f.until.timestamp())
    return where, params
