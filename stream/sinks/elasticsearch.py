"""Elasticsearch store: what a team runs behind the Kafka workers.

The document id is the article id, so a replay after a crash overwrites instead of
duplicating. Bulk requests are bounded (``bulk_size`` documents) and judged per document:
per-item 429/5xx come back as ``retry``, other item errors and documents Elasticsearch refuses
outright as ``rejected`` (the writer dead-letters those); only an unreachable or overloaded
cluster is :class:`StoreUnavailable`. Only
the standard analyzer and core field types are used, so the minimal ES distribution works.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError

from finpulse.config import ElasticsearchSettings
from finpulse.contracts import Scope, ScoredArticle, scope_filter, utcnow
from stream.sinks.base import (
    Filters,
    IndexResult,
    RatePoint,
    SearchResult,
    Store,
    StoreUnavailable,
    bucket_range,
    check_page,
    fill_buckets,
)

log = logging.getLogger(__name__)
MAX_WINDOW = 10_000  # index.max_result_window: deeper pages need search_after
# Statuses of a whole bulk request that some document in it caused (400: e.g. an id over 512
# bytes fails the request's validation; 413: too large): halve the request to find it.
DOCUMENT_ERRORS = frozenset({400, 413})

KEYWORD = {"type": "keyword"}
TEXT = {"type": "text", "analyzer": "standard"}
DATE = {"type": "date"}
MAPPINGS: dict[str, Any] = {
    "dynamic": False,  # unknown fields stay in _source, unindexed: no mapping explosion
    "properties": {
        "id": KEYWORD,
        "source": KEYWORD,
        "url": {"type": "keyword", "index": False},
        "title": TEXT,
        "body": TEXT,
        "published_at": DATE,
        "fetched_at": DATE,
        "scored_at": DATE,
        "indexed_at": DATE,
        "lang": KEYWORD,
        "tickers": KEYWORD,
        "topic": KEYWORD,
        "sentiment": KEYWORD,
        "model_version": KEYWORD,
        "schema_version": {"type": "integer"},
        "topic_probs": {"type": "object", "enabled": False},
        "sentiment_probs": {
            "properties": {s: {"type": "float"} for s in ("negative", "neutral", "positive")}
        },
    },
}


class ElasticsearchStore(Store):
    name = "elasticsearch"

    def __init__(
        self,
        settings: ElasticsearchSettings,
        *,
        index: str | None = None,
        bulk_size: int = 500,
        client: Elasticsearch | None = None,
    ) -> None:
        self.index_name = index or settings.index
        self.bulk_size = bulk_size
        self.es = client or Elasticsearch(
            settings.url,
            request_timeout=settings.request_timeout_s,
            max_retries=settings.max_retries,
            retry_on_timeout=True,
            basic_auth=(
                (settings.username, settings.password.get_secret_value())
                if settings.username and settings.password
                else None
            ),
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        )
        self._ensure_index()

    def _ensure_index(self) -> None:
        try:
            self.es.indices.put_index_template(
                name=f"{self.index_name}-template",
                index_patterns=[self.index_name],
                template={"settings": {"number_of_shards": 1}, "mappings": MAPPINGS},
            )
            if not self.es.indices.exists(index=self.index_name):
                self.es.indices.create(index=self.index_name)
        except ApiError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
        except TransportError as exc:
            raise StoreUnavailable(f"elasticsearch at {self.es} unreachable: {exc}") from exc

    def index(self, articles: Sequence[ScoredArticle]) -> IndexResult:
        """Bulk-index; judged document by document, so one bad document never blocks the rest.

        Only a failure that is not the documents' (connection, timeout; 401/403, 429 or 5xx
        on the whole request) is :class:`StoreUnavailable`. A request refused as a whole for
        its content (400/413: e.g. an id over 512 bytes fails the entire bulk) is split until
        the culprit is alone, which is then ``rejected`` with Elasticsearch's reason.
        """
        result = IndexResult()
        chunks = [articles[i : i + self.bulk_size] for i in range(0, len(articles), self.bulk_size)]
        for n, chunk in enumerate(chunks):
            try:
                self._judged(chunk, result)
            except StoreUnavailable as exc:
                if n == 0 and not (result.created or result.updated or result.rejected):
                    raise
                log.warning("bulk request failed after %d chunks: %s", n, exc)
                done = {*result.created, *result.updated, *result.rejected}
                done.update(a.id for a in result.retry)
                result.retry.extend(a for c in chunks[n:] for a in c if a.id not in done)
                break
        return result

    def _judged(self, chunk: Sequence[ScoredArticle], result: IndexResult) -> None:
        """One bulk request; a request refused as a whole is halved until it is one document."""
        try:
            self._bulk(chunk, result)
        except ApiError as exc:
            if exc.meta.status not in DOCUMENT_ERRORS:  # 401/403, 429, 5xx: not the documents'
                raise StoreUnavailable(f"bulk request failed: {exc}") from exc
            if len(chunk) == 1:
                result.rejected[chunk[0].id] = f"{exc.meta.status} {_reason(exc)}"
                return
            half = len(chunk) // 2
            self._judged(chunk[:half], result)
            self._judged(chunk[half:], result)
        except TransportError as exc:
            raise StoreUnavailable(f"bulk request failed: {exc}") from exc

    def _bulk(self, chunk: Sequence[ScoredArticle], result: IndexResult) -> None:
        now = utcnow().isoformat()
        ops: list[dict[str, Any]] = []
        for a in chunk:
            ops.append({"index": {"_index": self.index_name, "_id": a.id}})
            ops.append({**a.model_dump(mode="json"), "indexed_at": now})
        response = self.es.bulk(operations=ops)
        for a, item in zip(chunk, response["items"], strict=True):
            r = item["index"]
            status = r.get("status", 500)
            if status == 201:
                result.created.append(a.id)
            elif status == 200:
                result.updated.append(a.id)
            elif status == 429 or status >= 500:
                result.retry.append(a)
            else:
                err = r.get("error", {})
                result.rejected[a.id] = f"{status} {err.get('type')}: {err.get('reason')}"

    def refresh(self) -> None:
        """Make everything indexed so far searchable (ES search is near-real-time)."""
        self.es.indices.refresh(index=self.index_name)

    def search(
        self, q: str = "", filters: Filters | None = None, page: int = 1, size: int = 20
    ) -> SearchResult:
        check_page(page, size)
        if page * size > MAX_WINDOW:
            raise ValueError(f"page * size must be <= {MAX_WINDOW}; narrow the filters")
        must = (
            [{"multi_match": {"query": q, "fields": ["title^2", "body"], "operator": "and"}}]
            if q.strip()
            else []
        )
        query = {"bool": {"must": must, "filter": _filters(filters or Filters())}}
        r = self.es.search(
            index=self.index_name,
            query=query,
            sort=[{"published_at": "desc"}, {"id": "asc"}],
            from_=(page - 1) * size,
            size=size,
            track_total_hits=True,
        )
        hits = [_doc(h["_source"]) for h in r["hits"]["hits"]]
        return SearchResult(r["hits"]["total"]["value"], hits, page, size)

    def rates(
        self, scope: Scope, key: str, since: datetime, until: datetime, step_s: int
    ) -> list[RatePoint]:
        lo, hi = bucket_range(since, until, step_s)
        filters = [{"range": {"published_at": {"gte": lo * 1000, "lt": int(hi * 1000)}}}]
        if (selects := scope_filter(scope, key)) is not None:
            field, value = selects
            filters.append({"term": {field: value}})
        r = self.es.search(
            index=self.index_name,
            size=0,
            query={"bool": {"filter": filters}},
            aggs={
                "b": {
                    "date_histogram": {"field": "published_at", "fixed_interval": f"{step_s}s"},
                    "aggs": {"neg": {"filter": {"term": {"sentiment": "negative"}}}},
                }
            },
        )
        counts = {
            int(b["key"]) // 1000: (b["doc_count"], b["neg"]["doc_count"])
            for b in r["aggregations"]["b"]["buckets"]
        }
        return fill_buckets(lo, hi, step_s, counts)

    def latest(self, n: int = 20) -> list[ScoredArticle]:
        return self.search(size=n).hits

    def get(self, article_id: str) -> ScoredArticle | None:
        try:
            return _doc(self.es.get(index=self.index_name, id=article_id)["_source"])
        except NotFoundError:
            return None

    def count(self) -> int:
        return int(self.es.count(index=self.index_name)["count"])

    def close(self) -> None:
        self.es.close()


def _filters(f: Filters) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for field, value in (
        ("topic", f.topic),
        ("source", f.source),
        ("sentiment", f.sentiment),
        ("tickers", f.ticker),
    ):
        if value is not None:
            out.append({"term": {field: str(value)}})
    span = {k: v.isoformat() for k, v in (("gte", f.since), ("lt", f.until)) if v is not None}
    if span:
        out.append({"range": {"published_at": span}})
    return out


def _reason(exc: ApiError) -> str:
    """Elasticsearch's own ``type: reason`` of a refused request, else the error's text."""
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error")
    if isinstance(err, dict):
        return f"{err.get('type')}: {err.get('reason')}"[:1000]
    return str(exc)[:1000]


def _doc(source: dict[str, Any]) -> ScoredArticle:
    source = {k: v for k, v in source.items() if k != "indexed_at"}
    return ScoredArticle.model_validate(source)
