"""The alerting stage's Prometheus metrics, on a registry the caller owns."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.firing = Gauge(
            "finpulse_alerts_firing",
            "Alerts currently firing.",
            ["rule", "scope"],
            registry=registry,
        )
        self.transitions = Counter(
            "finpulse_alert_transitions",
            "Alert state changes (firing, resolved).",
            ["rule", "state"],
            registry=registry,
        )
        self.notifications = Counter(
            "finpulse_notifications",
            "Notification delivery attempts by outcome (sent, failed, skipped).",
            ["notifier", "outcome"],
            registry=registry,
        )
        self.outbox = Gauge(
            "finpulse_notification_outbox_size",
            "Notifications waiting for (re)delivery.",
            registry=registry,
        )
        self.late_windows = Counter(
            "finpulse_alert_late_windows",
            "Rate windows that arrived after their rule window was judged.",
            ["rule"],
            registry=registry,
        )
