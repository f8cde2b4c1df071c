"""The alerting engine: rate windows in, alert state changes out, notifications queued.

Detection and delivery are decoupled. :meth:`AlertEngine.process` (called by the stream
for every ``RateWindow`` update, from its event loop) re-buckets the stream's tumbling
windows into each rule's window/step, feeds the rule's detector, turns its decisions into
``Alert`` transitions (firing once, resolved once, a stable id per rule, key and episode)
and writes them, with the notifications they owe, to SQLite in one transaction — it never
touches the network. :meth:`AlertEngine.tick` (called every few seconds from a worker
thread) closes windows whose time is over — a key that goes quiet is a key whose rate
returned to zero, so its alert resolves —, queues repeat notifications for long-firing
alerts, and then :meth:`AlertEngine.deliver_pending` sends what the outbox holds, with
retries and capped backoff. The outbox is the source of truth: a restarted engine
delivers what its predecessor queued, and never queues the same page twice.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from alerts import notifiers
from alerts.config import AlertsSettings, RuleConfig
from alerts.detectors import Decision, Detector, create
from alerts.dispatch import Dispatcher
from alerts.metrics import AlertMetrics
from alerts.store import AlertStore
from finpulse.contracts import Alert, AlertState, Evidence, RateWindow, utcnow

log = logging.getLogger(__name__)


class AlertInputError(ValueError):
    """A rate window the configured rules cannot use (e.g. it does not tile their step)."""


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class _Series:
    """One (rule, key): its detector, the stream windows of its trailing rule window, its alert."""

    detector: Detector
    subs: dict[float, tuple[int, int, list[Evidence]]] = field(default_factory=dict)
    alert_id: str | None = None

    def sums(self, step_start: float, rule: RuleConfig) -> tuple[int, int]:
        lo, hi = step_start + rule.step - rule.window_s, step_start + rule.step
        neg = tot = 0
        for start, (n, t, _) in self.subs.items():
            if lo <= start < hi:
                neg, tot = neg + n, tot + t
        return neg, tot

    def evidence(self, step_start: float, rule: RuleConfig, size: int) -> list[Evidence]:
        lo, hi = step_start + rule.step - rule.window_s, step_start + rule.step
        merged = [ev for s, (_, _, evs) in self.subs.items() if lo <= s < hi for ev in evs]
        return sorted(merged, key=lambda ev: -ev.negative_prob)[:size]

    def state(self) -> dict[str, Any]:
        subs = {
            repr(s): [n, t, [ev.model_dump() for ev in evs]] for s, (n, t, evs) in self.subs.items()
        }
        return {"detector": self.detector.state_dict(), "subs": subs, "alert_id": self.alert_id}

    def load(self, state: dict[str, Any]) -> None:
        self.detector.load_state(state["detector"])
        self.subs = {
            float(s): (int(n), int(t), [Evidence(**ev) for ev in evs])
            for s, (n, t, evs) in state["subs"].items()
        }
        self.alert_id = state["alert_id"]


class AlertEngine:
    def __init__(
        self,
        settings: AlertsSettings,
        store: AlertStore,
        dispatcher: Dispatcher,
        metrics: AlertMetrics,
    ) -> None:
        self.settings, self.store, self.dispatcher, self.metrics = (
            settings,
            store,
            dispatcher,
            metrics,
        )
        self.rules = {rule.name: rule for rule in settings.rules}
        self._lock = threading.RLock()  # detector state: process() and tick() run on two threads
        self._series: dict[tuple[str, str], _Series] = {}
        for (rule_name, key), state in store.load_states().items():
            rule = self.rules.get(rule_name)
            if rule is None:
                continue
            series = self._new_series(rule)
            try:
                series.load(state)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("discarding saved state of %s/%s: %s", rule_name, key, exc)
                continue
            self._series[(rule_name, key)] = series
        for record in store.list_alerts(AlertState.FIRING, limit=1_000_000):
            a = record.alert
            self.metrics.firing.labels(a.rule, str(a.scope)).inc()

    @classmethod
    def from_settings(
        cls, settings: AlertsSettings, registry: CollectorRegistry = REGISTRY
    ) -> AlertEngine:
        store = AlertStore(settings.state_db)
        metrics = AlertMetrics(registry)
        dispatcher = Dispatcher(
            notifiers.build(settings.notifiers), store, metrics, settings.outbox
        )
        return cls(settings, store, dispatcher, metrics)

    # -- the API the stream calls ----------------------------------------------------
    def process(self, window: RateWindow, now: datetime | None = None) -> list[Alert]:
        """Feed one window update; returns the alerts that started firing or resolved."""
        now = now or utcnow()
        rules = [r for r in self.rules.values() if r.watches(window.scope, window.key)]
        start, end = window.start.timestamp(), window.end.timestamp()
        for rule in rules:
            if end <= start or rule.step % (end - start) or start % (end - start):
                raise AlertInputError(
                    f"window {window.start}–{window.end} does not tile rule {rule.name!r} "
                    f"(step {rule.step}s); make rule windows multiples of stream.window_s"
                )
        out: list[Alert] = []
        with self._lock, self.store.transaction():
            for rule in rules:
                out += self._feed(rule, window, now)
        return out

    def tick(self, now: datetime | None = None) -> list[Alert]:
        """Close windows whose time is over, queue repeat notifications, deliver the outbox.

        Returns the transitions the closed windows caused (already queued and, where the
        receivers are up, delivered by the time it returns).
        """
        now = now or utcnow()
        cutoff = now.timestamp() - self.settings.late_grace_s
        out: list[Alert] = []
        with self._lock, self.store.transaction():
            for (rule_name, key), series in self._series.items():
                rule = self.rules[rule_name]
                before = (series.detector.pending_ts, series.detector.last_ts)
                decisions = self._roll(rule, series, math.floor(cutoff / rule.step) * rule.step)
                out += self._apply(rule, key, series, decisions, now)
                if (series.detector.pending_ts, series.detector.last_ts) != before:
                    self.store.save_state(rule_name, key, series.state())
            for record in self.store.list_alerts(AlertState.FIRING, limit=1_000_000):
                rule = self.rules.get(record.alert.rule)
                if rule is not None:
                    self.dispatcher.route(record.alert, rule.notifiers, self._repeat(rule), now)
        self.deliver_pending(now)
        return out

    def deliver_pending(self, now: datetime | None = None) -> int:
        """Send every due outbox item once (network I/O, bounded by each notifier's timeout);
        failures are rescheduled with backoff. Returns how many were delivered."""
        return self.dispatcher.flush(now or utcnow())

    def close(self) -> None:
        self.store.close()

    # -- internals -------------------------------------------------------------------
    def _new_series(self, rule: RuleConfig) -> _Series:
        return _Series(create(rule.detector, step_s=rule.step, **rule.params))

    def _repeat(self, rule: RuleConfig) -> float:
        return rule.repeat_interval_s or self.settings.repeat_interval_s

    def _feed(self, rule: RuleConfig, window: RateWindow, now: datetime) -> list[Alert]:
        key = window.key
        series = self._series.get((rule.name, key))
        if series is None:
            series = self._series[(rule.name, key)] = self._new_series(rule)
        det = series.detector
        start = window.start.timestamp()
        step_start = math.floor(start / rule.step) * rule.step
        if det.pending_ts is None and det.last_ts is not None and step_start <= det.last_ts:
            self.metrics.late_windows.labels(rule.name).inc()
            if start >= det.last_ts + 2 * rule.step - rule.window_s:  # counts for later steps
                series.subs[start] = (window.negative, window.total, list(window.evidence))
                self.store.save_state(rule.name, key, series.state())
            return []
        target = max(step_start, det.pending_ts if det.pending_ts is not None else step_start)
        if start < target + rule.step - rule.window_s:
            self.metrics.late_windows.labels(rule.name).inc()
            return []
        series.subs[start] = (window.negative, window.total, list(window.evidence))
        decisions = self._roll(rule, series, target)
        decisions += det.update(target, *series.sums(target, rule))
        horizon = target + rule.step - rule.window_s
        series.subs = {s: v for s, v in series.subs.items() if s >= horizon}
        out = self._apply(rule, key, series, decisions, now)
        self.store.save_state(rule.name, key, series.state())
        return out

    def _roll(self, rule: RuleConfig, series: _Series, upto: float) -> list[Decision]:
        """Commit every step before ``upto``, feeding steps whose trailing window has counts."""
        det = series.detector
        current = det.last_ts
        if current is None:
            return []
        decisions: list[Decision] = []
        s = current + rule.step
        while s < upto:
            neg, tot = series.sums(s, rule)
            if tot == 0:
                break  # the trailing window only loses windows from here on
            decisions += det.update(s, neg, tot)
            s += rule.step
        return decisions + det.advance(upto)

    def _apply(
        self, rule: RuleConfig, key: str, series: _Series, decisions: list[Decision], now: datetime
    ) -> list[Alert]:
        out: list[Alert] = []
        for d in decisions:
            if d.started:
                alert = self._alert(rule, key, series, d)
                series.alert_id = alert.id
                self.metrics.firing.labels(rule.name, str(rule.scope)).inc()
            elif d.resolved and series.alert_id is not None:
                record = self.store.get_alert(series.alert_id)
                series.alert_id = None
                if record is None:
                    continue
                alert = record.alert.model_copy(
                    update={
                        "state": AlertState.RESOLVED,
                        "resolved_at": _dt(d.timestamp + rule.step),
                    }
                )
                self.metrics.firing.labels(rule.name, str(rule.scope)).dec()
            elif d.firing and series.alert_id is not None:
                record = self.store.get_alert(series.alert_id)
                if record is not None and d.score > record.alert.score:
                    peak = self._alert(rule, key, series, d, started=record.alert.started_at)
                    self.store.save_alert(peak.model_copy(update={"id": record.alert.id}))
                continue
            else:
                continue
            self.store.save_alert(alert)
            self.metrics.transitions.labels(rule.name, str(alert.state)).inc()
            self.dispatcher.route(alert, rule.notifiers, self._repeat(rule), now)
            out.append(alert)
        return out

    def _alert(
        self,
        rule: RuleConfig,
        key: str,
        series: _Series,
        d: Decision,
        started: datetime | None = None,
    ) -> Alert:
        """The alert of the episode starting at decision ``d`` (or its peak, ``started`` given)."""
        episode = f"{rule.name}|{key}|{d.timestamp:.0f}"
        return Alert(
            id=hashlib.sha256(episode.encode()).hexdigest()[:24],
            rule=rule.name,
            scope=rule.scope,
            key=key,
            state=AlertState.FIRING,
            severity=rule.severity_for(d.score),
            detector=rule.detector,
            window_start=_dt(d.timestamp + rule.step - rule.window_s),
            window_end=_dt(d.timestamp + rule.step),
            observed_rate=max(0.0, d.observed),
            baseline_rate=max(0.0, d.baseline),
            negative=d.negative,
            total=d.total,
            score=min(d.score, 1e6),
            started_at=started or _dt(d.timestamp),
            evidence=series.evidence(d.timestamp, rule, self.settings.evidence_size),
        )
