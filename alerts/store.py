"""SQLite state of the alerting stage: detector state, alerts, acks, silences and the outbox.

One file, WAL mode, so the stream's engine writes while the API and CLI read. This module
is also the lifecycle API the dashboard calls: list alerts, acknowledge, manage silences.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.silences import Silence
from finpulse.contracts import Alert, AlertState, decode, encode, utcnow

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
    last_error TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, body TEXT NOT NULL, ends_at REAL NOT NULL);
"""


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


class AlertStore:
    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit; nested uses join the outer one."""
        with self._lock:
            self._depth += 1
            try:
                yield
            except BaseException:
                if self._depth == 1:
                    self._db.rollback()
                raise
            else:
                if self._depth == 1:
                    self._db.commit()
            finally:
                self._depth -= 1

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self.transaction():
            return self._db.execute(sql, args)

    # -- detector state --------------------------------------------------------------
    def load_states(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._exec("SELECT rule, key, state FROM detector_state").fetchall()
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
        row = self._exec(
            "SELECT body, acked_at, acked_by, ack_comment FROM alerts WHERE id = ?", (alert_id,)
        ).fetchone()
        return None if row is None else self._record(row)

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
        return [self._record(r) for r in self._exec(sql, (*args, limit)).fetchall()]

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
        row = self._exec(
            "SELECT sent_at FROM deliveries WHERE alert_id = ? AND notifier = ? AND kind = ?",
            (alert_id, notifier, str(kind)),
        ).fetchone()
        return None if row is None else _dt(row[0])

    def mark_sent(self, alert_id: str, notifier: str, kind: AlertState, at: datetime) -> None:
        self._exec(
            "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
            (alert_id, notifier, str(kind), _ts(at)),
        )

    # -- outbox ----------------------------------------------------------------------
    def enqueue(self, notifier: str, alert: Alert, at: datetime) -> None:
        self._exec(
            "INSERT INTO outbox (notifier, kind, alert, next_attempt_at, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (notifier, str(alert.state), encode(alert).decode(), _ts(at), _ts(at)),
        )

    def due(self, at: datetime, limit: int = 100) -> list[OutboxItem]:
        rows = self._exec(
            "SELECT id, notifier, kind, alert, attempts, last_error FROM outbox "
            "WHERE next_attempt_at <= ? ORDER BY id LIMIT ?",
            (_ts(at), limit),
        ).fetchall()
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
        return int(self._exec("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # -- silences --------------------------------------------------------------------
    def add_silence(self, silence: Silence) -> Silence:
        self._exec(
            "INSERT INTO silences VALUES (?, ?, ?)",
            (silence.id, silence.model_dump_json(), _ts(silence.ends_at)),
        )
        return silence

    def list_silences(self, active_at: datetime | None = None) -> list[Silence]:
        """All silences, or those active at ``active_at``; soonest ending first."""
        rows = self._exec("SELECT body FROM silences ORDER BY ends_at, id").fetchall()
        silences = [Silence.model_validate_json(b) for (b,) in rows]
        return [s for s in silences if active_at is None or s.active(active_at)]

    def delete_silence(self, silence_id: str) -> bool:
        return self._exec("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount > 0

    def silenced(self, alert: Alert, at: datetime) -> Silence | None:
        return next((s for s in self.list_silences(at) if s.silences(alert, at)), None)
