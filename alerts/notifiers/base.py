"""Notifier contract and the shared HTTP/text helpers every notifier builds on."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from finpulse.contracts import Alert, AlertState


class DeliveryError(Exception):
    """A notification that did not get through; the outbox keeps it and retries."""


class Notifier:
    """Sends one alert state change to one destination; raises DeliveryError on failure."""

    type: ClassVar[str]

    def __init__(self, name: str, config: Any) -> None:
        self.name, self.config = name, config

    @property
    def repeat_interval_s(self) -> float | None:
        return self.config.repeat_interval_s

    def send(self, alert: Alert) -> None:
        raise NotImplementedError

    def post_json(
        self, url: str, payload: Any, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """One POST with the configured timeout; transport errors and non-2xx raise."""
        try:
            response = httpx.post(
                url, json=payload, headers=headers or {}, timeout=self.config.timeout_s
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise DeliveryError(f"{self.name}: HTTP {response.status_code}: {response.text[:200]}")
        return response


def title(alert: Alert) -> str:
    state = "RESOLVED" if alert.state is AlertState.RESOLVED else alert.severity.upper()
    return f"[{state}] negative news spike: {alert.scope} {alert.key} ({alert.rule})"


def describe(alert: Alert) -> str:
    """Plain-text body: counts, observed vs baseline, score and the articles behind it."""
    lines = [
        title(alert),
        f"window {alert.window_start:%Y-%m-%d %H:%M}–{alert.window_end:%H:%M} UTC: "
        f"{alert.negative} negative of {alert.total} articles",
        f"observed {alert.observed_rate:.3g} vs baseline {alert.baseline_rate:.3g} "
        f"({alert.detector}, score {alert.score:.1f})",
        f"alert id {alert.id}, started {alert.started_at:%Y-%m-%d %H:%M} UTC",
    ]
    if alert.resolved_at is not None:
        lines.append(f"resolved {alert.resolved_at:%Y-%m-%d %H:%M} UTC")
    for ev in alert.evidence:
        lines.append(f"- {ev.title} ({ev.negative_prob:.2f}) {ev.url or ev.id}")
    return "\n".join(lines)
