"""The search store every reader (dashboard, API) and writer (workers) goes through.

Two backends share this interface: :class:`~stream.sinks.sqlite.SqliteStore` (embedded
default, FTS5) and :class:`~stream.sinks.elasticsearch.ElasticsearchStore`. Writes are
idempotent by article id, so at-least-once delivery never duplicates an article; ``index``
also says which ids were new, which is what keeps replays from inflating the rates.

Methods are synchronous (SQLite and the ES client both are); async callers use
``asyncio.to_thread``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from finpulse.contracts import Scope, ScoredArticle, Sentiment

MAX_PAGE_SIZE = 500


class StoreUnavailable(RuntimeError):
    """The store cannot be reached or is overloaded; retrying the same call is safe."""


@dataclass(frozen=True)
class Filters:
    """Search filters; ``since`` is inclusive and ``until`` exclusive, on ``published_at``."""

    since: datetime | None = None
    until: datetime | None = None
    topic: str | None = None
    sentiment: Sentiment | None = None
    ticker: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            ts = getattr(self, name)
            if ts is not None and ts.tzinfo is None:
                raise ValueError(f"{name} must carry a timezone")
        if self.since and self.until and self.since >= self.until:
            raise ValueError(f"since ({self.since}) must be before until ({self.until})")
        if self.sentiment is not None:
            object.__setattr__(self, "sentiment", Sentiment(self.sentiment))
        if self.ticker is not None:
            object.__setattr__(self, "ticker", self.ticker.strip().lstrip("$").upper())


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: list[ScoredArticle]
    page: int
    size: int


@dataclass(frozen=True)
class RatePoint:
    """Counts of one time bucket; ``rate`` is the share of negative articles (0 when empty)."""

    start: datetime
    total: int
    negative: int

    @property
    def rate(self) -> float:
        return self.negative / self.total if self.total else 0.0


@dataclass
class IndexResult:
    """What became of each article of one ``index`` call."""

    created: list[str] = field(default_factory=list)  # ids new to the store
    updated: list[str] = field(default_factory=list)  # ids already there, overwritten
    retry: list[ScoredArticle] = field(default_factory=list)  # transient failure: resend
    rejected: dict[str, str] = field(default_factory=dict)  # id -> why, permanent


def check_page(page: int, size: int) -> None:
    if page < 1:
        raise ValueError(f"page must be >= 1, got {page}")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"size must be between 1 and {MAX_PAGE_SIZE}, got {size}")


def bucket_range(since: datetime, until: datetime, step_s: int) -> tuple[int, float]:
    """Validated [lo, hi) epoch seconds of a rate series; ``lo`` is aligned to ``step_s``."""
    if step_s < 1:
        raise ValueError(f"step_s must be >= 1, got {step_s}")
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must carry a timezone")
    if since >= until:
        raise ValueError(f"since ({since}) must be before until ({until})")
    if (until - since).total_seconds() / step_s > 10_000:
        raise ValueError("more than 10000 buckets requested; use a larger step_s")
    return int(since.timestamp()) // step_s * step_s, until.timestamp()


def fill_buckets(
    lo: int, hi: float, step_s: int, counts: dict[int, tuple[int, int]]
) -> list[RatePoint]:
    """Every bucket from ``lo`` to ``hi``; ``counts`` maps a bucket's start to (total, negative)."""
    starts = range(lo, int(hi) + (hi > int(hi)), step_s)
    return [RatePoint(datetime.fromtimestamp(t, UTC), *counts.get(t, (0, 0))) for t in starts]


class Store(ABC):
    """Scored articles: idempotent writes, full-text search, negative-rate series."""

    name: str

    @abstractmethod
    def index(self, articles: Sequence[ScoredArticle]) -> IndexResult:
        """Insert or overwrite by id. Raises :class:`StoreUnavailable` when it cannot try."""

    @abstractmethod
    def search(
        self, q: str = "", filters: Filters | None = None, page: int = 1, size: int = 20
    ) -> SearchResult:
        """Full-text match on title and body (all words), newest first; empty ``q`` = all."""

    @abstractmethod
    def rates(
        self, scope: Scope, key: str, since: datetime, until: datetime, step_s: int
    ) -> list[RatePoint]:
        """Counts per ``step_s`` bucket (aligned to the epoch) in [since, until), gaps as 0."""

    @abstractmethod
    def latest(self, n: int = 20) -> list[ScoredArticle]:
        """The ``n`` most recently published articles."""

    @abstractmethod
    def get(self, article_id: str) -> ScoredArticle | None: ...

    @abstractmethod
    def count(self) -> int:
        """How many articles the store holds."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
