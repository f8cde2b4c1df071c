"""Fixtures for the stream tests (helpers live in stream_helpers.py)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from stream.metrics import StreamMetrics


@pytest.fixture
def metrics() -> StreamMetrics:
    return StreamMetrics(CollectorRegistry())
