"""Notifier contract and the shared HTTP/text helpers every notifier builds on.

A notifier is one class: its ``type`` (the name ``[alerts.notifiers.X] type = ...`` picks
it by), its ``Config`` (a :class:`NotifierSettings` subclass: the table's other keys, checked
at config load) and ``send``. Defining it registers it in :data:`NOTIFIERS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from alerts.registry import Registry
from finpulse.contracts import Alert, AlertState
from finpulse.errors import DeliveryError


class NotifierSettings(BaseModel):
    """Keys every notifier table has; a notifier's ``Config`` adds its own."""

    model_config = ConfigDict(extra="forbid")

    type: str
    timeout_s: float = Field(default=5.0, gt=0)
    repeat_interval_s: float | None = Field(default=None, gt=0)


class Notifier(ABC):
    """Sends one alert state change to one destination; raises DeliveryError on failure."""

    type: ClassVar[str]
    Config: ClassVar[type[NotifierSettings]] = NotifierSettings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type" in vars(cls):
            NOTIFIERS.add(cls.type, cls)

    def __init__(self, name: str, config: Any) -> None:
        self.name, self.config = name, config

    @property
    def repeat_interval_s(self) -> float | None:
        return self.config.repeat_interval_s

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver ``alert`` once, within ``config.timeout_s``; raise DeliveryError if not."""

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


NOTIFIERS: Registry[type[Notifier]] = Registry("notifier type")
