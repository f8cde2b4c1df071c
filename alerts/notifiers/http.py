"""Notifiers that speak JSON over HTTP: generic webhook, Slack, PagerDuty, Alertmanager."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, SecretStr

from alerts.notifiers.base import Notifier, NotifierSettings, describe, title
from alerts.silences import alert_labels
from finpulse.contracts import Alert, AlertState, utcnow


class WebhookConfig(NotifierSettings):
    url: str
    headers: dict[str, str] = Field(default_factory=dict)


class WebhookNotifier(Notifier):
    """The alert itself as JSON, with a version so receivers can evolve."""

    type = "webhook"
    Config = WebhookConfig

    def send(self, alert: Alert) -> None:
        payload = {"version": 1, "status": str(alert.state), "alert": alert.model_dump(mode="json")}
        self.post_json(self.config.url, payload, self.config.headers)


class SlackConfig(NotifierSettings):
    url: SecretStr


class SlackNotifier(Notifier):
    """Slack incoming webhook: a headline plus the evidence as links."""

    type = "slack"
    Config = SlackConfig

    def send(self, alert: Alert) -> None:
        links = "\n".join(
            f"• <{ev.url}|{ev.title}>" if ev.url else f"• {ev.title}" for ev in alert.evidence
        )
        body = "\n".join(describe(alert).splitlines()[1:4])
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title(alert)[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        ]
        if links:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": links[:2900]}})
        self.post_json(self.config.url.get_secret_value(), {"text": title(alert), "blocks": blocks})


_PD_SEVERITY = {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}


class PagerDutyConfig(NotifierSettings):
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"


class PagerDutyNotifier(Notifier):
    """PagerDuty Events API v2: trigger and resolve share the alert id as dedup key."""

    type = "pagerduty"
    Config = PagerDutyConfig

    def send(self, alert: Alert) -> None:
        event: dict[str, Any] = {
            "routing_key": self.config.routing_key.get_secret_value(),
            "dedup_key": alert.id,
            "event_action": "resolve" if alert.state is AlertState.RESOLVED else "trigger",
        }
        if alert.state is AlertState.FIRING:
            event["payload"] = {
                "summary": title(alert)[:1024],
                "source": "finpulse",
                "severity": _PD_SEVERITY.get(alert.severity, "warning"),
                "component": f"{alert.scope}:{alert.key}",
                "group": alert.rule,
                "custom_details": alert.model_dump(mode="json", exclude={"evidence"}),
            }
            event["links"] = [{"href": ev.url, "text": ev.title} for ev in alert.evidence if ev.url]
        self.post_json(self.config.url, event)


class AlertmanagerConfig(NotifierSettings):
    url: str = "http://127.0.0.1:19095"
    repeat_interval_s: float | None = Field(default=300.0, gt=0)


class AlertmanagerNotifier(Notifier):
    """Alertmanager API v2: firing alerts are re-posted while firing (their ``endsAt`` a few
    repeat intervals ahead, so Alertmanager keeps them alive) and closed with ``endsAt``."""

    type = "alertmanager"
    Config = AlertmanagerConfig

    def send(self, alert: Alert) -> None:
        now = utcnow()
        if alert.state is AlertState.RESOLVED:
            ends = min(alert.resolved_at or now, now)
        else:
            ends = now + timedelta(seconds=3 * (self.config.repeat_interval_s or 300.0))
        labels = {"alertname": alert.rule, "alert_id": alert.id, **alert_labels(alert)}
        labels.pop("rule")
        body = {
            "labels": labels,
            "annotations": {
                "summary": title(alert),
                "description": describe(alert),
                "observed_rate": f"{alert.observed_rate:.4g}",
                "baseline_rate": f"{alert.baseline_rate:.4g}",
                "score": f"{alert.score:.2f}",
            },
            "startsAt": min(alert.started_at, now).isoformat(),
            "endsAt": ends.isoformat(),
        }
        self.post_json(self.config.url.rstrip("/") + "/api/v2/alerts", [body])
