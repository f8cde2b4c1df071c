"""``/api/articles``: full-text search with filters, and one article by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException, Query

from dashboard import schemas
from dashboard.routes.common import RANGE, Id, fits, ordered
from dashboard.schemas import ApiTime, clamped
from dashboard.services import Services
from finpulse.contracts import ScoredArticle, Sentiment
from stream.sinks import Filters

MAX_RESULTS = 10_000  # page * size; Elasticsearch's index.max_result_window


def add_routes(app: FastAPI, s: Services) -> None:
    """Search and single-article lookup; page bounds follow ``api.page_size_max``."""

    size_max = s.api.page_size_max

    @app.get(
        "/api/articles",
        response_model=schemas.ArticlePage,
        tags=["articles"],
        description="Search scored articles, newest first; filters combine with AND. "
        + RANGE
        + f"At most {MAX_RESULTS} results are reachable (page * size).",
    )
    def articles(
        q: Annotated[str, Query(max_length=500, description="full-text, all words")] = "",
        since: Annotated[ApiTime | None, Query(description="published at or after")] = None,
        until: Annotated[ApiTime | None, Query(description="published before")] = None,
        topic: Annotated[str | None, Query(max_length=200)] = None,
        sentiment: Sentiment | None = None,
        ticker: Annotated[str | None, Query(max_length=20)] = None,
        source: Annotated[str | None, Query(max_length=200)] = None,
        page: int = Query(1, ge=1, le=max(1, MAX_RESULTS // size_max)),
        size: int = Query(min(20, size_max), ge=1, le=size_max),
    ) -> schemas.ArticlePage:
        ordered(since, until)
        lo, hi = (clamped(since) if since else None), (clamped(until) if until else None)
        if lo is not None and hi is not None and lo >= hi:  # both beyond the stored range
            return schemas.ArticlePage(total=0, page=page, size=size, items=[])
        filters = Filters(
            since=lo,
            until=hi,
            topic=topic or None,
            sentiment=sentiment,
            ticker=ticker or None,
            source=source or None,
        )
        result = s.store.search(q, filters, page, size)
        return schemas.ArticlePage(
            total=result.total, page=result.page, size=result.size, items=result.hits
        )

    @app.get("/api/articles/{article_id}", response_model=ScoredArticle, tags=["articles"])
    def article(article_id: Id) -> ScoredArticle:
        found = s.store.get(article_id) if fits(article_id) else None
        if found is None:
            raise HTTPException(404, f"no article with id {article_id!r}")
        return found
