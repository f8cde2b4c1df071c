"""Settings of spike detection, alert lifecycle and notifiers (section ``[alerts]``).

Rules and notifiers are validated here, at load time, so a typo in a detector parameter
or a route to a notifier that does not exist is a config error, not a silent non-page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from alerts.detectors import DETECTORS, parameters, params_schema
from alerts.notifiers import NotifierSettings, parse_config
from alerts.registry import import_plugins, problems
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
        try:  # the detector's own schema: its parameters' types
            params_schema(DETECTORS[self.detector]).model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(f"detector {self.detector!r}: {problems(exc)}") from None
        return self

    def watches(self, scope: Scope | str, key: str) -> bool:
        """Whether this rule judges ``key`` of ``scope`` (the engine and the dashboard ask).

        >>> rule = RuleConfig(name="r", scope="ticker", keys=["A*"], exclude_keys=["AMZN"])
        >>> [rule.watches("ticker", k) for k in ("AAPL", "AMZN", "MSFT", "A")]
        [True, False, False, True]
        >>> rule.watches("topic", "AAPL")
        False
        """
        if self.scope != scope:
            return False
        if self.keys and not any(fnmatchcase(key, p) for p in self.keys):
            return False
        return not any(fnmatchcase(key, p) for p in self.exclude_keys)

    def severity_for(self, score: float) -> str:
        levels = sorted(self.severity, key=lambda lv: lv.min_score)
        chosen = levels[0].severity if levels else "warning"
        for level in levels:
            if score >= level.min_score:
                chosen = level.severity
        return chosen


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
    # First: the plugins' modules are imported before rules and notifiers name them.
    plugins: list[str] = Field(
        default_factory=list, description="modules defining your own detectors and notifiers"
    )
    state_db: Path = Path("var/alerts.db")
    rules: list[RuleConfig] = Field(default_factory=_default_rules)
    notifiers: dict[str, SerializeAsAny[NotifierSettings]] = Field(default_factory=dict)
    repeat_interval_s: float = Field(default=4 * 3600.0, gt=0)
    late_grace_s: float = Field(
        default=60.0, ge=0, description="how long after a window's end late updates may come"
    )
    evidence_size: int = Field(default=5, ge=0)
    outbox: OutboxSettings = OutboxSettings()

    @field_validator("plugins")
    @classmethod
    def _import(cls, v: list[str]) -> list[str]:
        return import_plugins(v)

    @field_validator("notifiers", mode="before")
    @classmethod
    def _by_type(cls, v: Any) -> Any:
        """Each table checked by its notifier's own schema, looked up by ``type``."""
        if not isinstance(v, Mapping):
            return v
        return {name: parse_config(str(name), raw) for name, raw in v.items()}

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
