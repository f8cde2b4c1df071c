"""Sources by kind: ``rss``, ``page``, ``json_api``, ``replay``; more register by name."""

from ingest.sources import json_api, page, replay, rss
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
    "json_api",
    "options_model",
    "page",
    "register_source",
    "replay",
    "rss",
    "source_class",
]
