"""Message contracts shared by every stage: what travels on Kafka and between the cores.

Every message is JSON on the wire, versioned and decoded by :mod:`finpulse.wire`, whose
:func:`decode` (re-exported here) turns pydantic's errors into a :class:`ContractError` that
names the bad field.

>>> from datetime import datetime, UTC
>>> a = Article.create(source="wire", url="https://ex.com/a?utm_source=x#top", title="Hi",
...                    published_at=datetime(2026, 1, 2, tzinfo=UTC))
>>> a.url
'https://ex.com/a'
>>> decode(Article, encode(a)) == a
True
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

# The wire mechanics, re-exported: importers take a message and its codec from one place.
from finpulse.wire import SCHEMA_VERSION as SCHEMA_VERSION
from finpulse.wire import ContractError as ContractError
from finpulse.wire import Message as Message
from finpulse.wire import UtcDatetime as UtcDatetime
from finpulse.wire import decode as decode
from finpulse.wire import encode as encode
from finpulse.wire import schema_version as schema_version
from finpulse.wire import utcnow as utcnow

# Query parameters that identify a campaign, not a story: two URLs that differ only in
# these are the same article.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "ref",
        "ref_src",
        "cmpid",
        "mbid",
        "ncid",
        "_hsenc",
        "_hsmi",
        "yclid",
        "s_cid",
        "guccounter",
    }
)


# Bounds every stage can rely on. An id is an Elasticsearch document id (at most 512 bytes);
# text is bounded so a scored article always fits one Kafka message (1 MB by default) with
# room for its scores: a story's body is a few kilobytes, and the model reads 500 characters.
MAX_ID_BYTES = 512
MAX_TITLE_CHARS = 2_000
MAX_BODY_BYTES = 200_000
MAX_URL_CHARS = 4_096
MAX_TICKERS = 64
MAX_TICKER_CHARS = 32


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Scope(StrEnum):
    GLOBAL = "global"
    TOPIC = "topic"
    TICKER = "ticker"
    SOURCE = "source"


# The article field each scope counts by; GLOBAL counts every article. Aggregation, the stores'
# rate queries and the alert evidence all read it from here.
SCOPE_FIELDS = {Scope.TOPIC: "topic", Scope.SOURCE: "source", Scope.TICKER: "tickers"}


def scope_filter(scope: Scope | str, key: str) -> tuple[str, str] | None:
    """The (article field, value) that selects the articles of ``scope``/``key``; None for all.

    >>> scope_filter("ticker", "acme"), scope_filter(Scope.GLOBAL, "all")
    (('tickers', 'ACME'), None)
    """
    scope = Scope(scope)
    if scope not in SCOPE_FIELDS:
        return None
    return SCOPE_FIELDS[scope], key.upper() if scope == Scope.TICKER else key


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def canonical_url(url: str) -> str:
    """The URL two crawls of one story agree on: no fragment, no tracking, lower-case host.

    >>> canonical_url("HTTPS://Example.COM:443/a/?utm_medium=x&b=2&a=1#frag")
    'https://example.com/a/?a=1&b=2'
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"only http(s) URLs are accepted, got {url!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    port = parts.port
    netloc = (
        host
        if port is None or (scheme, port) in (("http", 80), ("https", 443))
        else (f"{host}:{port}")
    )
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def article_id(
    url: str | None = None, *, source: str | None = None, guid: str | None = None
) -> str:
    """Stable id: from the canonical URL, else from source + guid, so re-crawls collide."""
    if url:
        basis = "url:" + canonical_url(url)
    elif source and guid:
        basis = f"guid:{source}:{guid}"
    else:
        raise ValueError("an article id needs a url, or a source and a guid")
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def _id_bytes(v: str) -> str:
    if len(v.encode()) > MAX_ID_BYTES:
        raise ValueError(f"id is {len(v.encode())} bytes; at most {MAX_ID_BYTES} are allowed")
    return v


def _body_bytes(v: str) -> str:
    if len(v.encode()) > MAX_BODY_BYTES:
        raise ValueError(
            f"body is {len(v.encode())} bytes; at most {MAX_BODY_BYTES} are allowed (cut it "
            "at the source: the model reads only its first 500 characters)"
        )
    return v


class Article(Message):
    id: Annotated[str, AfterValidator(_id_bytes)] = Field(min_length=1)
    source: str = Field(min_length=1, max_length=256)
    url: str | None = Field(default=None, max_length=MAX_URL_CHARS)
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    body: Annotated[str, AfterValidator(_body_bytes)] = ""
    published_at: UtcDatetime
    fetched_at: UtcDatetime = Field(default_factory=utcnow)
    lang: str = Field(default="en", max_length=16)
    tickers: list[str] = Field(default_factory=list, max_length=MAX_TICKERS)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        return canonical_url(v) if v else None

    @field_validator("tickers")
    @classmethod
    def _upper_unique(cls, v: list[str]) -> list[str]:
        tickers = {t.strip().lstrip("$").upper() for t in v if t.strip().lstrip("$")}
        if too_long := [t for t in tickers if len(t) > MAX_TICKER_CHARS]:
            raise ValueError(f"ticker {too_long[0][:40]!r} is longer than {MAX_TICKER_CHARS}")
        return sorted(tickers)

    @classmethod
    def create(
        cls,
        *,
        source: str,
        title: str,
        url: str | None = None,
        guid: str | None = None,
        **fields: Any,
    ) -> Article:
        """Build an article whose id is derived, never invented by the caller."""
        return cls(
            id=article_id(url, source=source, guid=guid),
            source=source,
            url=url,
            title=title,
            **fields,
        )

    @property
    def text(self) -> str:
        """What the model reads: the title and the lead of the body."""
        return f"{self.title}. {self.body[:500]}".strip() if self.body else self.title


class ScoredArticle(Article):
    topic: str
    topic_probs: dict[str, float]
    sentiment: Sentiment
    sentiment_probs: dict[str, float]
    model_version: str
    scored_at: UtcDatetime = Field(default_factory=utcnow)

    @classmethod
    def from_article(cls, article: Article, **scores: Any) -> ScoredArticle:
        return cls(**article.model_dump(), **scores)

    def scope_keys(self) -> list[tuple[Scope, str]]:
        """Every (scope, key) this article counts towards when rates are aggregated."""
        keys = [(Scope.GLOBAL, "all")]
        for scope, field in SCOPE_FIELDS.items():
            value = getattr(self, field)
            keys += [(scope, v) for v in value] if isinstance(value, list) else [(scope, value)]
        return keys


class Evidence(BaseModel):
    """One negative article that drove a rate: enough for an on-call to read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    url: str | None = None
    negative_prob: float = Field(ge=0.0, le=1.0)


class RateWindow(Message):
    """Counts of one (scope, key) over one window: what aggregation hands to alerting.

    The same window may be sent again with larger counts while it is open; ``evidence``
    holds the window's most negative articles so far, most negative first.
    """

    scope: Scope
    key: str
    start: UtcDatetime
    end: UtcDatetime
    total: int = Field(ge=0)
    negative: int = Field(ge=0)
    evidence: list[Evidence] = Field(default_factory=list)

    @field_validator("negative")
    @classmethod
    def _not_above_total(cls, v: int, info: Any) -> int:
        if v > info.data.get("total", v):
            raise ValueError("negative count cannot exceed total")
        return v


class Alert(Message):
    id: str
    rule: str
    scope: Scope
    key: str
    state: AlertState
    severity: str = "warning"
    detector: str
    window_start: UtcDatetime
    window_end: UtcDatetime
    observed_rate: float = Field(ge=0.0)
    baseline_rate: float = Field(ge=0.0)
    negative: int = Field(ge=0)
    total: int = Field(ge=0)
    score: float
    started_at: UtcDatetime
    resolved_at: UtcDatetime | None = None
    evidence: list[Evidence] = Field(default_factory=list)
