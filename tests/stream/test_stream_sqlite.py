from datetime import timedelta

import pytest
from stream_helpers import T0, make_scored

from finpulse.contracts import Scope
from stream.sinks.base import Filters
from stream.sinks.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "db" / "finpulse.db")
    yield s
    s.close()


@pytest.fixture
def filled(store):
    store.index(
        [
            make_scored(
                1,
                "negative",
                0.9,
                title="Acme shares crash on fraud probe",
                tickers=["ACME"],
                minutes=1,
            ),
            make_scored(
                2,
                "positive",
                0.0,
                title="Acme earnings beat estimates",
                tickers=["ACME"],
                topic="earnings",
                minutes=2,
                source="reuters",
            ),
            make_scored(3, "neutral", 0.1, title="Bond yields flat", minutes=7),
            make_scored(
                4, "negative", 0.7, title="Globex crash deepens", tickers=["GLBX"], minutes=8
            ),
        ]
    )
    return store


def test_index_is_idempotent_and_reports_new_ids(store):
    first = store.index([make_scored(1), make_scored(2)])
    assert first.created == [make_scored(1).id, make_scored(2).id] and first.updated == []
    again = store.index([make_scored(2, "negative", 0.8), make_scored(3)])
    assert again.created == [make_scored(3).id] and again.updated == [make_scored(2).id]
    assert store.count() == 3
    assert store.get(make_scored(2).id).sentiment == "negative"  # overwritten, not duplicated


def test_full_text_search_matches_all_words_newest_first(filled):
    r = filled.search("crash")
    assert r.total == 2 and [a.title for a in r.hits] == [
        "Globex crash deepens",
        "Acme shares crash on fraud probe",
    ]
    assert filled.search("acme crash").total == 1
    assert filled.search("ACME").total == 2
    assert filled.search('"crash" OR*').total == 0  # operators are words, never a syntax error
    assert filled.search("!!!").total == 0


def test_search_after_overwrite_sees_the_new_text(store):
    store.index([make_scored(1, title="old headline")])
    store.index([make_scored(1, title="new headline")])
    assert store.search("old").total == 0 and store.search("new").total == 1


def test_filters_combine(filled):
    assert filled.search(filters=Filters(ticker="$acme")).total == 2
    assert filled.search(filters=Filters(sentiment="negative")).total == 2
    assert filled.search(filters=Filters(topic="earnings", source="reuters")).total == 1
    window = Filters(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=8))
    assert [a.id for a in filled.search(filters=window).hits] == [
        make_scored(3).id,
        make_scored(2, source="reuters").id,
    ]
    assert filled.search("crash", Filters(ticker="GLBX")).hits[0].tickers == ["GLBX"]


def test_paging(filled):
    pages = [filled.search(page=p, size=3) for p in (1, 2)]
    assert [len(p.hits) for p in pages] == [3, 1] and pages[1].total == 4
    assert filled.latest(2)[0].id == make_scored(4).id
    with pytest.raises(ValueError, match="size"):
        filled.search(size=0)
    with pytest.raises(ValueError, match="page"):
        filled.search(page=0)


def test_bad_filters_are_clear_errors():
    with pytest.raises(ValueError, match="before"):
        Filters(since=T0, until=T0)
    with pytest.raises(ValueError, match="timezone"):
        Filters(since=T0.replace(tzinfo=None))
    with pytest.raises(ValueError):
        Filters(sentiment="angry")


def test_rates_per_scope_fill_gaps(filled):
    until = T0 + timedelta(minutes=15)
    g = filled.rates(Scope.GLOBAL, "all", T0, until, 300)
    assert [(p.start, p.total, p.negative) for p in g] == [
        (T0, 2, 1),
        (T0 + timedelta(minutes=5), 2, 1),
        (T0 + timedelta(minutes=10), 0, 0),
    ]
    assert g[0].rate == 0.5 and g[2].rate == 0.0
    assert [p.total for p in filled.rates(Scope.TICKER, "acme", T0, until, 300)] == [2, 0, 0]
    assert [p.negative for p in filled.rates(Scope.TOPIC, "markets", T0, until, 300)] == [1, 1, 0]
    assert [p.total for p in filled.rates(Scope.SOURCE, "reuters", T0, until, 300)] == [1, 0, 0]
    with pytest.raises(ValueError, match="step_s"):
        filled.rates(Scope.GLOBAL, "all", T0, until, 0)


def test_a_reader_sees_what_the_writer_committed(tmp_path):
    path = tmp_path / "shared.db"
    writer, reader = SqliteStore(path), SqliteStore(path)
    writer.index([make_scored(1)])
    assert reader.get(make_scored(1).id) is not None
    writer.close()
    reader.close()
