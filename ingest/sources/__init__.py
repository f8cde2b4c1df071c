"""Sources by kind: ``rss``, ``page``, ``json_api``, ``replay``, ``edgar_submissions``,
``nasdaq_halts``; more register by name."""

from ingest.sources import edgar, json_api, nasdaq_halts, page, replay, rss
from ingest.sources.base import (
    Source,
    SourceContext,
    build_source,
    options_model,
    register_source,
    source_class,
)

__all__ = [
    "Source",
    "SourceContext",
    "build_source",
    "edgar",
    "json_api",
    "nasdaq_halts",
    "options_model",
    "page",
    "register_source",
    "replay",
    "rss",
    "source_class",
]
