"""SQLite state of the alerting stage: detector state, alerts, acks, silences and the outbox.

One file, WAL mode, so the stream's engine writes while the API and CLI read. This module
is also the lifecycle API the dashboard calls: list alerts, acknowledge, manage silences.

Every write transaction takes the write lock first (``BEGIN IMMEDIATE``), so another
process holding the file (a CLI ack, an ``sqlite3`` shell) only delays it: the lock is
waited for and retried for up to ``lock_wait_s``, before anything in the transaction ran.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.silences import Silence
from finpulse.contracts import Alert, AlertState, decode, encode, utcnow

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS detector_state (
    rule TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (rule, key));
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, rule TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL,
    state TEXT NOT NULL, started_at REAL NOT NULL, body TEXT NOT NULL,
    acked_at REAL, acked_by TEXT, ack_comment TEXT);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, started_at);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id TEXT NOT NULL, notifier TEXT NOT NULL, kind TEXT NOT NULL, sent_at REAL NOT NULL,
    PRIMARY KEY (alert_id, notifier, kind));
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, notifier TEXT NOT NULL, kind TEXT NOT NULL,
    alert TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
    last_error TEXT, created_at REAL NOT NULL, alert_id TEXT);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, body TEXT NOT NULL, ends_at REAL NOT NULL)
"""
# Outboxes written before notifications were ordered per alert lack the alert_id column.
_MIGRATIONS = {
    ("outbox", "alert_id"): (
        "ALTER TABLE outbox ADD COLUMN alert_id TEXT",
        "UPDATE outbox SET alert_id = json_extract(alert, '$.id')",
    ),
}
_INDEXES = "CREATE INDEX IF NOT EXISTS outbox_alert ON outbox (alert_id, notifier, id)"
# An item is due only as the oldest one left for its alert and notifier: a resolve is never
# sent before the firing notification it follows, even while that one is being retried.
_DUE = """
SELECT id, notifier, kind, alert, attempts, last_error FROM outbox AS o
WHERE next_attempt_at <= ? AND NOT EXISTS (
    SELECT 1 FROM outbox AS p WHERE p.alert_id = o.alert_id AND p.notifier = o.notifier
    AND p.id < o.id)
ORDER BY id LIMIT ?
"""


class StateLocked(sqlite3.OperationalError):
    """Another process held the alert state's write lock for longer than ``lock_wait_s``."""


class CorruptState(sqlite3.DatabaseError):
    """The alert state file is not a readable SQLite database."""


@dataclass(frozen=True)
class AlertRecord:
    alert: Alert
    acked_at: datetime | None = None
    acked_by: str | None = None
    ack_comment: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.acked_at is not None


@dataclass(frozen=True)
class OutboxItem:
    id: int
    notifier: str
    kind: AlertState
    alert: Alert
    attempts: int
    last_error: str | None


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class AlertStore:
    def __init__(
        self, path: str | Path, *, busy_timeout_s: float = 5.0, lock_wait_s: float = 120.0
    ) -> None:
        path = Path(path)
        self.path = path
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_wait_s = lock_wait_s
        self._lock = threading.RLock()
        self._depth = 0
        # Autocommit mode: transaction() alone begins and ends transactions.
        self._db = sqlite3.connect(
            str(path), timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
        )
        try:
            self._retry_locked(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    self._db.execute(statement)
                self._migrate()
                self._db.execute(_INDEXES)
        except StateLocked:
            self._db.close()
            raise
        except sqlite3.OperationalError as exc:  # e.g. unable to open the file
            self._db.close()
            raise sqlite3.OperationalError(f"alert state {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise CorruptState(
                f"alert state {path} is not a readable SQLite database ({exc}); move it aside "
                f"(mv {path} {path}.corrupt) and start again: alert history and detector "
                "baselines then start afresh"
            ) from None

    def _migrate(self) -> None:
        for (table, column), statements in _MIGRATIONS.items():
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                for statement in statements:
                    self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def _retry_locked(self, step: Any) -> Any:
        """Run ``step``, waiting out another process's lock for up to ``lock_wait_s``.

        Each try already waits the connection's busy timeout; between tries a warning says
        who is waiting, so a stuck lock is visible rather than a silent stall.
        """
        deadline = time.monotonic() + self._lock_wait_s
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise StateLocked(
                        f"alert state {self.path} stayed locked by another process for over "
                        f"{self._lock_wait_s:.0f} s ({exc})"
                    ) from None
                log.warning("alert state %s is locked by another process; retrying", self.path)
                time.sleep(0.05)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit; nested uses join the outer one.

        The outer one takes the write lock before its body runs, so a lock held elsewhere
        delays the body (bounded, see ``_retry_locked``) and never fails it halfway.
        """
        with self._lock:
            if self._depth == 0:
                self._retry_locked(lambda: self._db.execute("BEGIN IMMEDIATE"))
            self._depth += 1
            try:
                yield
                if self._depth == 1:
                    self._db.execute("COMMIT")
            except BaseException:
                if self._depth == 1 and self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._depth -= 1

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """A write, in the current transaction or one of its own."""
        with self.transaction():
            return self._db.execute(sql, args)

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """A read: WAL readers never wait for a writer, so no write lock is taken."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- detector state --------------------------------------------------------------
    def load_states(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._query("SELECT rule, key, state FROM detector_state")
        return {(r, k): json.loads(s) for r, k, s in rows}

    def save_state(self, rule: str, key: str, state: dict[str, Any]) -> None:
        self._exec(
            "INSERT OR REPLACE INTO detector_state VALUES (?, ?, ?, ?)",
            (rule, key, json.dumps(state), _ts(utcnow())),
        )

    # -- alerts ----------------------------------------------------------------------
    def save_alert(self, alert: Alert) -> None:
        self._exec(
            "INSERT INTO alerts (id, rule, scope, key, state, started_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "state=excluded.state, body=excluded.body",
            (
                alert.id,
                alert.rule,
                str(alert.scope),
                alert.key,
                str(alert.state),
                _ts(alert.started_at),
                encode(alert).decode(),
            ),
        )

    def _record(self, row: tuple[Any, ...]) -> AlertRecord:
        body, acked_at, acked_by, comment = row
        return AlertRecord(decode(Alert, body), _dt(acked_at), acked_by, comment)

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        rows = self._query(
            "SELECT body, acked_at, acked_by, ack_comment FROM alerts WHERE id = ?", (alert_id,)
        )
        return self._record(rows[0]) if rows else None

    def list_alerts(
        self,
        state: AlertState | None = None,
        rule: str | None = None,
        key: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AlertRecord]:
        """Alerts newest first: ``state=FIRING`` for the current ones, none for history."""
        where, args = [], []
        for column, value in (("state", state), ("rule", rule), ("key", key)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(str(value))
        if since is not None:
            where.append("started_at >= ?")
            args.append(_ts(since))
        sql = "SELECT body, acked_at, acked_by, ack_comment FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id LIMIT ?"
        return [self._record(r) for r in self._query(sql, (*args, limit))]

    def acknowledge(
        self, alert_id: str, by: str, comment: str = "", at: datetime | None = None
    ) -> AlertRecord:
        """Mark an alert as handled: it is no longer re-notified (its resolve still is)."""
        cur = self._exec(
            "UPDATE alerts SET acked_at = ?, acked_by = ?, ack_comment = ? WHERE id = ?",
            (_ts(at or utcnow()), by, comment, alert_id),
        )
        if cur.rowcount == 0:
            raise KeyError(f"no alert with id {alert_id!r}")
        record = self.get_alert(alert_id)
        assert record is not None
        return record

    # -- deliveries (what each notifier was last told) -------------------------------
    def last_sent(self, alert_id: str, notifier: str, kind: AlertState) -> datetime | None:
        rows = self._query(
            "SELECT sent_at FROM deliveries WHERE alert_id = ? AND notifier = ? AND kind = ?",
            (alert_id, notifier, str(kind)),
        )
        return _dt(rows[0][0]) if rows else None

    def mark_sent(self, alert_id: str, notifier: str, kind: AlertState, at: datetime) -> None:
        self._exec(
            "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
            (alert_id, notifier, str(kind), _ts(at)),
        )

    # -- outbox ----------------------------------------------------------------------
    def enqueue(self, notifier: str, alert: Alert, at: datetime) -> None:
        self._exec(
            "INSERT INTO outbox (notifier, kind, alert, next_attempt_at, created_at, alert_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (notifier, str(alert.state), encode(alert).decode(), _ts(at), _ts(at), alert.id),
        )

    def due(self, at: datetime, limit: int = 100) -> list[OutboxItem]:
        """Items to send now, oldest first, at most one per alert and notifier (in order)."""
        rows = self._query(_DUE, (_ts(at), limit))
        return [
            OutboxItem(i, n, AlertState(k), decode(Alert, a), attempts, err)
            for i, n, k, a, attempts, err in rows
        ]

    def delivered(self, item_id: int) -> None:
        self._exec("DELETE FROM outbox WHERE id = ?", (item_id,))

    def reschedule(self, item_id: int, next_at: datetime, error: str) -> None:
        self._exec(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
            "WHERE id = ?",
            (_ts(next_at), error[:500], item_id),
        )

    def outbox_size(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM outbox")[0][0])

    # -- silences --------------------------------------------------------------------
    def add_silence(self, silence: Silence) -> Silence:
        self._exec(
            "INSERT INTO silences VALUES (?, ?, ?)",
            (silence.id, silence.model_dump_json(), _ts(silence.ends_at)),
        )
        return silence

    def list_silences(self, active_at: datetime | None = None) -> list[Silence]:
        """All silences, or those active at ``active_at``; soonest ending first."""
        ended = -1.0 if active_at is None else _ts(active_at)  # skip the expired ones in SQL
        rows = self._query(
            "SELECT body FROM silences WHERE ends_at > ? ORDER BY ends_at, id", (ended,)
        )
        silences = [Silence.model_validate_json(b) for (b,) in rows]
        return [s for s in silences if active_at is None or s.active(active_at)]

    def delete_silence(self, silence_id: str) -> bool:
        return self._exec("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount > 0

    def silenced(self, alert: Alert, at: datetime) -> Silence | None:
        return next((s for s in self.list_silences(at) if s.silences(alert, at)), None)
