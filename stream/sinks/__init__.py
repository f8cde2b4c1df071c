"""Search stores: one interface (:class:`Store`), SQLite embedded or Elasticsearch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream.sinks.base import (
    Filters,
    IndexResult,
    RatePoint,
    SearchResult,
    Store,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from app.settings import Settings


def open_store(settings: Settings) -> Store:
    """The store ``settings.store.backend`` names (the dashboard and API use this too)."""
    if settings.store.backend == "elasticsearch":
        from stream.sinks.elasticsearch import ElasticsearchStore  # needs the [stream] extra

        return ElasticsearchStore(settings.elasticsearch, bulk_size=settings.stream.store_bulk_size)
    from stream.sinks.sqlite import SqliteStore

    return SqliteStore(settings.store.sqlite_path)


__all__ = [
    "Filters",
    "IndexResult",
    "RatePoint",
    "SearchResult",
    "Store",
    "StoreUnavailable",
    "open_store",
]
