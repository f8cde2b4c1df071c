"""Request and response bodies of the JSON API (they are its OpenAPI documentation too).

Every limit the API enforces on a single value is declared here or on the route, so the
OpenAPI document is the whole contract a client (or a fuzzer) needs; the few rules that
span two fields are stated in the operation's description.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from alerts.silences import MAX_MATCHER_CHARS, MAX_MATCHERS, Silence
from alerts.store import AlertRecord
from dashboard.bands import Band
from finpulse.contracts import Alert, Scope, ScoredArticle, utcnow
from stream.sinks.base import RatePoint

MAX_SILENCE = timedelta(days=90)
# Times outside this range are clamped to it: no article is older, and ranges computed
# from a time (minus 500 windows, plus a silence's 90 days) stay representable.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
MATCHER_FORMAT = "alertmanager-matcher"


def _rfc3339(value: Any) -> datetime:
    """An RFC 3339 date-time (the OpenAPI ``date-time`` format): no numbers, no naive times."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with a timezone, e.g. 2026-01-02T03:04:05Z")
    return datetime.fromisoformat(value.upper())


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; beyond what UTC can represent, the first or last moment."""
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        return (datetime.min if value.year < 5000 else datetime.max).replace(tzinfo=UTC)


def clamped(value: datetime) -> datetime:
    """``value`` in UTC, held within [EARLIEST, LATEST]: a range bound for the stores."""
    return min(max(as_utc(value), EARLIEST), LATEST)


# A query or body time: RFC 3339 with a timezone, as the schema says.
ApiTime = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ErrorBody(BaseModel):
    error: str


class ArticlePage(BaseModel):
    total: int
    page: int
    size: int
    items: list[ScoredArticle]


class RatePointOut(BaseModel):
    start: datetime
    end: datetime
    total: int
    negative: int
    share: float | None = Field(description="negative / total; null for an empty window")
    baseline: float | None = Field(description="the rule detector's baseline negative share")
    threshold: float | None = Field(description="negative share that would fire at this volume")

    @classmethod
    def of(cls, point: RatePoint, step_s: int, band: Band | None = None) -> RatePointOut:
        return cls(
            start=point.start,
            end=point.start + timedelta(seconds=step_s),
            total=point.total,
            negative=point.negative,
            share=point.rate if point.total else None,
            baseline=band.baseline if band else None,
            threshold=band.threshold if band else None,
        )


class RateSeries(BaseModel):
    scope: Scope
    key: str
    step_s: int
    rule: str | None = Field(description="the alert rule whose detector drew baseline/threshold")
    points: list[RatePointOut]


class KeySeries(BaseModel):
    key: str
    total: int
    negative: int
    recent_share: float | None = Field(description="negative share of the last 3 windows")
    points: list[RatePointOut]


class KeyRates(BaseModel):
    scope: Scope
    step_s: int
    keys: list[KeySeries]


class Ack(BaseModel):
    by: str
    at: datetime
    comment: str


class AlertOut(Alert):
    ack: Ack | None = None
    silenced: bool = False

    @classmethod
    def of(cls, record: AlertRecord, silenced: bool) -> AlertOut:
        ack = (
            Ack(by=record.acked_by or "", at=record.acked_at, comment=record.ack_comment or "")
            if record.acked_at
            else None
        )
        return cls(**record.alert.model_dump(), ack=ack, silenced=silenced)


class AlertList(BaseModel):
    items: list[AlertOut]


class AckIn(_Body):
    by: str = Field(default="analyst", min_length=1, max_length=100)
    comment: str = Field(default="", max_length=2000)


Matcher = Annotated[
    str,
    Field(
        max_length=MAX_MATCHER_CHARS,
        json_schema_extra={"format": MATCHER_FORMAT},
        description="label=value, label!=value, label=~regex or label!~regex (RE2 syntax); "
        "labels: rule, scope, key, severity, detector",
    ),
]
_NOT_BLANK = {"type": "string", "pattern": "\\S"}


class SilenceIn(_Body):
    """Matchers (Alertmanager style) and/or the rule/scope/key shortcuts; ends by a
    duration or at ``ends_at``, which must be after the start (``starts_at``, default now)."""

    model_config = ConfigDict(
        json_schema_extra={
            # exactly one way to end; at least one matcher or shortcut
            "oneOf": [
                {"required": ["duration_s"], "properties": {"duration_s": {"type": "integer"}}},
                {"required": ["ends_at"], "properties": {"ends_at": {"type": "string"}}},
            ],
            "anyOf": [
                {"required": ["matchers"], "properties": {"matchers": {"minItems": 1}}},
                {"required": ["rule"], "properties": {"rule": _NOT_BLANK}},
                {"required": ["scope"], "properties": {"scope": {"type": "string"}}},
                {"required": ["key"], "properties": {"key": _NOT_BLANK}},
            ],
        }
    )

    matchers: list[Matcher] = Field(
        default_factory=list, max_length=MAX_MATCHERS - 3, examples=[["key=~AAPL|MSFT"]]
    )
    rule: str | None = Field(default=None, max_length=200)
    scope: Scope | None = None
    key: str | None = Field(default=None, max_length=200)
    duration_s: int | None = Field(default=None, ge=60, le=int(MAX_SILENCE.total_seconds()))
    starts_at: ApiTime | None = None
    ends_at: ApiTime | None = None
    comment: str | None = Field(default="", max_length=2000)
    created_by: str = Field(default="analyst", max_length=100)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _in_range(cls, v: datetime | None) -> datetime | None:
        return None if v is None else as_utc(v)

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if (self.duration_s is None) == (self.ends_at is None):
            raise ValueError("give exactly one of duration_s and ends_at")
        if not (self.matchers or self.rule or self.scope or self.key):
            raise ValueError("a silence needs at least one matcher (or rule, scope or key)")
        return self

    def to_silence(self) -> Silence:
        start = self.starts_at or utcnow()
        try:
            end = self.ends_at or start + timedelta(seconds=self.duration_s or 0)
        except OverflowError:  # starts in year 9999
            end = datetime.max.replace(tzinfo=UTC)
        exact = [(n, v) for n, v in (("rule", self.rule), ("scope", self.scope), ("key", self.key))]
        matchers = [*self.matchers, *(f"{n}={v}" for n, v in exact if v is not None)]
        return Silence(
            matchers=matchers,
            starts_at=start,
            ends_at=end,
            comment=self.comment or "",
            created_by=self.created_by,
        )


class SilenceList(BaseModel):
    items: list[Silence]


class FeedbackIn(_Body):
    article_id: str = Field(min_length=1, max_length=200)
    task: Literal["topic", "sentiment"]
    label: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2000)


class FeedbackOut(BaseModel):
    stored: bool
    task: str
    label: str
    predicted: str
    feedback_rows: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    store: dict[str, Any]
    alerts: dict[str, Any]
    model: dict[str, Any]


class ModelOut(BaseModel):
    version: str | None
    method: str | None = None
    created_at: datetime | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    # What the metrics were measured on (data files + sha256), and where the model came from.
    metrics_data: str | None = None
    generated_data: bool = False
    origin: dict[str, Any] = Field(default_factory=dict)
    # The scoring path these settings pick on the API's machine: path, dtype_policy, reason,
    # host (a worker elsewhere exports its own on finpulse_model_info).
    scoring: dict[str, str] = Field(default_factory=dict)
    versions: list[str]
    topics: list[str]
    sentiments: list[str]


class Facets(BaseModel):
    topics: list[str]
    tickers: list[str]
    sources: list[str]
    sentiments: list[str]
