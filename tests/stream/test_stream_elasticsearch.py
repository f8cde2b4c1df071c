"""ElasticsearchStore against the real local Elasticsearch: a bulk is judged per document."""

import uuid
from datetime import timedelta

import pytest
from elasticsearch import Elasticsearch
from stream_helpers import T0, make_scored

from finpulse.config import ElasticsearchSettings
from finpulse.contracts import Scope
from stream.sinks.base import StoreUnavailable
from stream.sinks.elasticsearch import ElasticsearchStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(elasticsearch_url):
    s = ElasticsearchStore(ElasticsearchSettings(url=elasticsearch_url),
                           index=f"test-es-{uuid.uuid4().hex[:8]}")  # fmt: skip
    client = s.es
    yield s
    client.indices.delete(index=s.index_name, ignore_unavailable=True)
    client.close()


def test_a_document_refused_outright_is_rejected_alone_and_the_rest_are_stored(store):
    """An id over 512 bytes makes Elasticsearch refuse the whole bulk request (400); the
    store splits it until the culprit is alone, so only that one is rejected."""
    good = [make_scored(i) for i in range(7)]
    bad = make_scored(99).model_copy(update={"id": "x" * 600})  # past the contract, as if old
    result = store.index([*good[:3], bad, *good[3:]])
    assert sorted(result.created) == sorted(a.id for a in good)
    assert list(result.rejected) == [bad.id]
    assert "too long" in result.rejected[bad.id] and result.rejected[bad.id].startswith("400")
    assert result.retry == []
    store.refresh()
    assert store.count() == 7


def test_only_an_unreachable_cluster_is_store_unavailable(store):
    store.es = Elasticsearch("http://127.0.0.1:1", request_timeout=2, max_retries=0)  # gone
    with pytest.raises(StoreUnavailable):
        store.index([make_scored(1)])


def test_rates_per_scope_select_the_field_the_contract_names(store):
    """The same scopes as the SQLite store's test: both read ``finpulse.contracts.scope_filter``."""
    store.index(
        [
            make_scored(1, "negative", 0.9, tickers=["ACME"], minutes=1),
            make_scored(
                2, "positive", 0.0, tickers=["ACME"], topic="earnings", minutes=2, source="reuters"
            ),
            make_scored(3, "neutral", 0.1, minutes=7),
            make_scored(4, "negative", 0.7, tickers=["GLBX"], minutes=8),
        ]
    )
    store.refresh()
    until = T0 + timedelta(minutes=15)
    totals = [(p.total, p.negative) for p in store.rates(Scope.GLOBAL, "all", T0, until, 300)]
    assert totals == [(2, 1), (2, 1), (0, 0)]
    assert [p.total for p in store.rates(Scope.TICKER, "acme", T0, until, 300)] == [2, 0, 0]
    assert [p.negative for p in store.rates(Scope.TOPIC, "markets", T0, until, 300)] == [1, 1, 0]
    assert [p.total for p in store.rates(Scope.SOURCE, "reuters", T0, until, 300)] == [1, 0, 0]
