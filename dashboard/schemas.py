"""Request and response bodies of the JSON API (they are its OpenAPI documentation too)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.silences import Silence
from alerts.store import AlertRecord
from dashboard.bands import Band
from finpulse.contracts import Alert, Scope, ScoredArticle, UtcDatetime, utcnow
from stream.sinks.base import RatePoint

MAX_SILENCE = timedelta(days=90)


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


class SilenceIn(_Body):
    """Either matchers (Alertmanager style) or the rule/scope/key shortcuts, or both."""

    matchers: list[str] = Field(default_factory=list, examples=[["key=~AAPL|MSFT"]])
    rule: str | None = Field(default=None, max_length=200)
    scope: Scope | None = None
    key: str | None = Field(default=None, max_length=200)
    duration_s: int | None = Field(default=None, ge=60, le=int(MAX_SILENCE.total_seconds()))
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    comment: str = Field(default="", max_length=2000)
    created_by: str = Field(default="analyst", max_length=100)

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if (self.duration_s is None) == (self.ends_at is None):
            raise ValueError("give exactly one of duration_s and ends_at")
        if not (self.matchers or self.rule or self.scope or self.key):
            raise ValueError("a silence needs at least one matcher (or rule, scope or key)")
        return self

    def to_silence(self) -> Silence:
        start = self.starts_at or utcnow()
        end = self.ends_at or start + timedelta(seconds=self.duration_s or 0)
        exact = [(n, v) for n, v in (("rule", self.rule), ("scope", self.scope), ("key", self.key))]
        matchers = [*self.matchers, *(f"{n}={v}" for n, v in exact if v is not None)]
        return Silence(
            matchers=matchers,
            starts_at=start,
            ends_at=end,
            comment=self.comment,
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
    versions: list[str]
    topics: list[str]
    sentiments: list[str]


class Facets(BaseModel):
    topics: list[str]
    tickers: list[str]
    sources: list[str]
    sentiments: list[str]
