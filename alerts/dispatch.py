"""Who is told what, when: routing, repeat intervals, silences, acks — and the outbox.

:meth:`Dispatcher.route` writes notifications to the SQLite outbox in the same transaction
as the alert change (no I/O); :meth:`Dispatcher.flush` delivers them, from whichever thread
calls it, without holding the store while it waits on the network. A failed delivery stays
in the outbox with exponential backoff (capped), so a receiver that is down for an hour
still gets every page afterwards. Delivery is at least once: a crash between a send and
its bookkeeping re-sends on restart, which receivers deduplicate by alert id.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from alerts.config import OutboxSettings
from alerts.metrics import AlertMetrics
from alerts.notifiers import DeliveryError, Notifier
from alerts.store import AlertStore
from finpulse.contracts import Alert, AlertState
from finpulse.retry import backoff_s


class Dispatcher:
    def __init__(
        self,
        notifiers: dict[str, Notifier],
        store: AlertStore,
        metrics: AlertMetrics,
        outbox: OutboxSettings | None = None,
    ) -> None:
        self.notifiers, self.store, self.metrics = notifiers, store, metrics
        self.outbox = outbox or OutboxSettings()
        self._flushing = threading.Lock()  # one delivery pass at a time: no double sends

    def route(
        self, alert: Alert, notifiers: list[str], repeat_s: float, now: datetime
    ) -> list[str]:
        """Queue what ``alert`` owes each notifier now; returns the notifiers queued for."""
        queued: list[str] = []
        if alert.state is AlertState.FIRING:
            record = self.store.get_alert(alert.id)
            if (record and record.acknowledged) or self.store.silenced(alert, now):
                return queued
            for name in notifiers:
                last = self.store.last_sent(alert.id, name, AlertState.FIRING)
                notifier = self.notifiers.get(name)
                repeat = (notifier and notifier.repeat_interval_s) or repeat_s
                if last is None or (now - last).total_seconds() >= repeat:
                    queued.append(name)
        else:
            for name in notifiers:
                told = self.store.last_sent(alert.id, name, AlertState.FIRING) is not None
                if told and self.store.last_sent(alert.id, name, AlertState.RESOLVED) is None:
                    queued.append(name)
        with self.store.transaction():
            for name in queued:
                self.store.enqueue(name, alert, now)
                self.store.mark_sent(alert.id, name, alert.state, now)
        return queued

    def flush(self, now: datetime) -> int:
        """Try every due notification once; returns how many were delivered.

        A pass already running on another thread makes this one return 0 at once.
        """
        if not self._flushing.acquire(blocking=False):
            return 0
        try:
            return self._flush(now)
        finally:
            self._flushing.release()

    def _flush(self, now: datetime) -> int:
        delivered = 0
        for item in self.store.due(now, self.outbox.batch):
            notifier = self.notifiers.get(item.notifier)
            try:
                if notifier is None:
                    raise DeliveryError(f"notifier {item.notifier!r} is not configured")
                notifier.send(item.alert)
            except DeliveryError as exc:
                delay = backoff_s(item.attempts, self.outbox.backoff_s, self.outbox.max_backoff_s)
                self.store.reschedule(item.id, now + timedelta(seconds=delay), str(exc))
                self.metrics.notifications.labels(item.notifier, "failed").inc()
            else:
                self.store.delivered(item.id)
                self.metrics.notifications.labels(item.notifier, "sent").inc()
                delivered += 1
        self.metrics.outbox.set(self.store.outbox_size())
        return delivered
