"""Settings of spike detection, alert lifecycle and notifiers (section ``[alerts]``).

Rules and notifiers are validated here, at load time, so a typo in a detector parameter
or a route to a notifier that does not exist is a config error, not a silent non-page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from alerts.detectors import DETECTORS, parameters
from finpulse.contracts import Scope

_NAME = r"^[a-z0-9][a-z0-9_.-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeverityLevel(_Model):
    """Alerts whose score reaches ``min_score`` get ``severity`` (the highest level wins)."""

    min_score: float = 0.0
    severity: str = Field(default="warning", min_length=1)


class RuleConfig(_Model):
    """One alerting rule: which keys, over which window, judged by which detector."""

    name: str = Field(pattern=_NAME)
    scope: Scope
    keys: list[str] = Field(default_factory=list, description="fnmatch patterns; empty = all")
    exclude_keys: list[str] = Field(default_factory=list)
    window_s: int = Field(default=300, ge=1, description="a multiple of stream.window_s")
    step_s: int | None = Field(default=None, ge=1, description="default: window_s (tumbling)")
    detector: str = "beta_binomial"
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    severity: list[SeverityLevel] = Field(
        default_factory=lambda: [
            SeverityLevel(min_score=0, severity="warning"),
            SeverityLevel(min_score=10, severity="critical"),
        ]
    )
    notifiers: list[str] = Field(default_factory=list)
    repeat_interval_s: float | None = Field(default=None, gt=0)

    @property
    def step(self) -> int:
        return self.step_s or self.window_s

    @model_validator(mode="after")
    def _check(self) -> RuleConfig:
        if self.window_s % self.step != 0:
            raise ValueError(
                f"window_s ({self.window_s}) must be a multiple of step_s ({self.step})"
            )
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; known: {sorted(DETECTORS)}")
        unknown = set(self.params) - parameters(self.detector) - {"step_s"}
        if unknown:
            raise ValueError(f"detector {self.detector!r} has no parameter(s) {sorted(unknown)}")
        if "step_s" in self.params:
            raise ValueError("set step_s on the rule, not in params")
        return self

    def severity_for(self, score: float) -> str:
        levels = sorted(self.severity, key=lambda lv: lv.min_score)
        chosen = levels[0].severity if levels else "warning"
        for level in levels:
            if score >= level.min_score:
                chosen = level.severity
        return chosen


class _NotifierBase(_Model):
    timeout_s: float = Field(default=5.0, gt=0)
    repeat_interval_s: float | None = Field(default=None, gt=0)


class WebhookConfig(_NotifierBase):
    type: Literal["webhook"] = "webhook"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)


class SlackConfig(_NotifierBase):
    type: Literal["slack"] = "slack"
    url: SecretStr


class PagerDutyConfig(_NotifierBase):
    type: Literal["pagerduty"] = "pagerduty"
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"


class AlertmanagerConfig(_NotifierBase):
    type: Literal["alertmanager"] = "alertmanager"
    url: str = "http://127.0.0.1:19095"
    repeat_interval_s: float | None = Field(default=300.0, gt=0)


class EmailConfig(_NotifierBase):
    type: Literal["email"] = "email"
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "finpulse@localhost"
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None


NotifierConfig = Annotated[
    WebhookConfig | SlackConfig | PagerDutyConfig | AlertmanagerConfig | EmailConfig,
    Field(discriminator="type"),
]


def _default_rules() -> list[RuleConfig]:
    return [
        RuleConfig(name="global-negative-share", scope=Scope.GLOBAL),
        RuleConfig(name="topic-negative-share", scope=Scope.TOPIC, window_s=900),
        RuleConfig(
            name="ticker-negative-volume",
            scope=Scope.TICKER,
            window_s=3600,
            step_s=900,
            detector="negbinom",
            # a week of 15-minute steps; each hour's share of the day learned over a week
            params={
                "half_life": 672,
                "warmup": 96,
                "seasonality": "hour_of_day",
                "season_half_life": 28,
            },
        ),
        RuleConfig(name="source-negative-share", scope=Scope.SOURCE, window_s=900),
    ]


class OutboxSettings(_Model):
    """Delivery retries: undeliverable notifications stay queued with capped backoff."""

    backoff_s: float = Field(default=2.0, gt=0)
    max_backoff_s: float = Field(default=300.0, gt=0)
    batch: int = Field(default=100, ge=1)


class AlertsSettings(_Model):
    state_db: Path = Path("var/alerts.db")
    rules: list[RuleConfig] = Field(default_factory=_default_rules)
    notifiers: dict[str, NotifierConfig] = Field(default_factory=dict)
    repeat_interval_s: float = Field(default=4 * 3600.0, gt=0)
    late_grace_s: float = Field(
        default=60.0, ge=0, description="how long after a window's end late updates may come"
    )
    evidence_size: int = Field(default=5, ge=0)
    outbox: OutboxSettings = OutboxSettings()

    @field_validator("notifiers")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [n for n in v if not re.match(_NAME, n)]
        if bad:
            raise ValueError(f"notifier names must match {_NAME}: {bad}")
        return v

    @model_validator(mode="after")
    def _routes(self) -> AlertsSettings:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate rule names: {dupes}")
        for rule in self.rules:
            missing = [n for n in rule.notifiers if n not in self.notifiers]
            if missing:
                raise ValueError(f"rule {rule.name!r} routes to unknown notifier(s) {missing}")
        return self
