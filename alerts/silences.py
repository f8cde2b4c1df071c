"""Silences: Alertmanager-style label matchers over a time range.

Regex matchers run on RE2 (``google-re2``), the engine Alertmanager itself uses: matching
takes time linear in the label's length whatever the pattern, so a silence such as
``key=~(A+)+$`` cannot stall alert listing or health checks. Constructs RE2 lacks
(backreferences, lookaround) are refused when the silence is created.

>>> m = parse_matcher("key=~AAPL|MSFT")
>>> m.matches({"key": "MSFT"}), m.matches({"key": "MSFTX"})
(True, False)
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finpulse.contracts import Alert, UtcDatetime, utcnow

LABELS = ("rule", "scope", "key", "severity", "detector")
MAX_MATCHER_CHARS = 1000
MAX_MATCHERS = 20
_MATCHER = re.compile(r"\s*([a-z_]+)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.DOTALL)


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> re2._Regexp:
    """The RE2 program of ``pattern``; ``ValueError`` naming the problem if RE2 refuses it."""
    options = re2.Options()
    options.log_errors = False  # the error is raised to the caller, not printed
    options.max_mem = 1 << 20  # program size bound: 1 MiB
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ValueError(f"bad regular expression {pattern!r} ({reason})") from None


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op in ("=", "!="):
            return (actual == self.value) == (self.op == "=")
        hit = compile_regex(self.value).fullmatch(actual) is not None
        return hit == (self.op == "=~")

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """``label=value``, ``label!=value``, ``label=~regex`` or ``label!~regex``."""
    if len(text) > MAX_MATCHER_CHARS:
        raise ValueError(f"a matcher is at most {MAX_MATCHER_CHARS} characters")
    m = _MATCHER.fullmatch(text)
    if not m:
        raise ValueError(f"matcher {text!r} is not label=value, label!=value, label=~re, label!~re")
    label, op, value = m.groups()
    value = value.strip("\"'")
    if label not in LABELS:
        raise ValueError(f"matcher label {label!r} unknown; use one of {', '.join(LABELS)}")
    if op in ("=~", "!~"):
        try:
            compile_regex(value)
        except ValueError as exc:
            raise ValueError(f"matcher {text!r}: {exc}") from None
    return Matcher(label, op, value)


def alert_labels(alert: Alert) -> dict[str, str]:
    return {
        "rule": alert.rule,
        "scope": str(alert.scope),
        "key": alert.key,
        "severity": alert.severity,
        "detector": alert.detector,
    }


class Silence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    matchers: list[str] = Field(min_length=1, max_length=MAX_MATCHERS)
    starts_at: UtcDatetime = Field(default_factory=utcnow)
    ends_at: UtcDatetime
    comment: str = ""
    created_by: str = ""
    created_at: UtcDatetime = Field(default_factory=utcnow)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, v: list[str]) -> list[str]:
        return [str(parse_matcher(m)) for m in v]

    @model_validator(mode="after")
    def _range(self) -> Silence:
        if self.ends_at <= self.starts_at:
            raise ValueError("a silence must end after it starts")
        return self

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def silences(self, alert: Alert, at: datetime) -> bool:
        labels = alert_labels(alert)
        return self.active(at) and all(parse_matcher(m).matches(labels) for m in self.matchers)
