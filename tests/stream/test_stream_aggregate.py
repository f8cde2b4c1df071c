from datetime import UTC, datetime, timedelta

import pytest
from stream_helpers import T0, make_scored

from finpulse.contracts import Scope
from stream.aggregate import OTHER_KEY, KeyWindows, RateAggregator, RateCounter, window_bounds


def by_key(windows):
    return {(w.scope, w.key, w.start): w for w in windows}


def test_window_bounds_are_epoch_aligned():
    start, end = window_bounds(T0 + timedelta(minutes=7, seconds=3), 300)
    assert start == T0 + timedelta(minutes=5)
    assert end == T0 + timedelta(minutes=10)


def test_counts_every_scope_of_an_article():
    a = make_scored(1, "negative", 0.8, tickers=["acme", "$XYZ"], source="reuters")
    windows = by_key(RateAggregator(300).add([a]))
    start = T0
    assert set(windows) == {
        (Scope.GLOBAL, "all", start),
        (Scope.TOPIC, "markets", start),
        (Scope.SOURCE, "reuters", start),
        (Scope.TICKER, "ACME", start),
        (Scope.TICKER, "XYZ", start),
    }
    assert all(w.total == 1 and w.negative == 1 for w in windows.values())


def test_windows_grow_while_open_and_split_by_event_time():
    agg = RateAggregator(300, evidence_size=2)
    agg.add([make_scored(1, "negative", 0.6, minutes=1)])
    w = by_key(
        agg.add([make_scored(2, "neutral", minutes=2), make_scored(3, "negative", 0.9, minutes=6)])
    )
    first = w[(Scope.GLOBAL, "all", T0)]
    second = w[(Scope.GLOBAL, "all", T0 + timedelta(minutes=5))]
    assert (first.total, first.negative) == (2, 1)
    assert (second.total, second.negative) == (1, 1)
    assert [e.id for e in first.evidence] == [make_scored(1).id]


def test_evidence_keeps_the_most_negative_only_once():
    arts = [make_scored(i, "negative", neg) for i, neg in enumerate([0.5, 0.99, 0.7, 0.6])]
    agg = RateAggregator(300, evidence_size=2)
    agg.add(arts[:2])
    w = by_key(agg.add([*arts[2:], arts[1]]))[(Scope.GLOBAL, "all", T0)]
    assert [e.negative_prob for e in w.evidence] == [0.99, 0.7]
    assert w.negative == 5  # the aggregator counts what it is given; dedup is the store's job
    assert all(e.title for e in w.evidence)


def test_late_articles_are_left_out():
    counter = RateCounter(300, lateness_s=600)
    counter.count([make_scored(1, minutes=60)])
    deltas = counter.count([make_scored(2, minutes=49), make_scored(3, minutes=51)])
    assert counter.late == 1
    assert {d.start for d in deltas} == {T0 + timedelta(minutes=50)}


def test_future_publication_does_not_move_the_watermark():
    counter = RateCounter(300, lateness_s=600)
    future = make_scored(1, minutes=600, fetched_at=T0)  # published "after" it was fetched
    counter.count([future])
    assert counter.watermark == T0
    assert counter.count([make_scored(2, minutes=1)]) and counter.late == 0


def test_key_windows_prune_old_windows():
    kw = KeyWindows(lateness_s=300)
    for minutes in (0, 5, 10, 20):
        (d,) = [
            x
            for x in RateCounter(300).count([make_scored(minutes, minutes=minutes)])
            if x.scope == "global"
        ]
        kw.merge(d)
    # kept: the newest window and those starting within lateness + one window before it
    assert sorted(kw.windows) == [T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)]


def test_state_round_trips_through_plain_dicts():
    agg = RateAggregator(300, evidence_size=3)
    agg.add([make_scored(1, "negative", 0.8, tickers=["ACME"]), make_scored(2)])
    restored = RateAggregator.from_dict(agg.to_dict(), 300, evidence_size=3)
    again = by_key(restored.add([make_scored(3, "negative", 0.9, tickers=["ACME"])]))
    w = again[(Scope.TICKER, "ACME", T0)]
    assert (w.total, w.negative, len(w.evidence)) == (2, 2, 2)
    assert restored.counter.watermark == agg.counter.watermark


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="window_s"):
        RateCounter(0)
    with pytest.raises(ValueError, match="lateness_s"):
        RateCounter(300, lateness_s=-1)


def test_a_date_far_in_the_future_is_clamped_and_cannot_make_the_rest_late():
    now = T0 + timedelta(hours=1)
    counter = RateCounter(300, lateness_s=600, future_s=300)
    year_2099 = datetime(2099, 1, 1, tzinfo=UTC)
    bad = make_scored(1, published_at=year_2099, fetched_at=year_2099)
    [delta, *_] = counter.count([bad], now=now)
    assert counter.clamped == 1 and counter.watermark == now + timedelta(seconds=300)
    assert delta.start <= now + timedelta(seconds=300)
    following = [make_scored(i, minutes=59) for i in range(2, 502)]
    counter.count(following, now=now)
    assert counter.late == 0


def test_distinct_keys_per_scope_and_window_are_capped_the_rest_count_as_other():
    counter = RateCounter(300, max_keys=3)
    batch = [make_scored(i, tickers=[f"T{i}"]) for i in range(10)]
    first = counter.count(batch[:5])
    second = counter.count([*batch[5:], make_scored(99, tickers=["T0"])])
    tickers = [d for d in first + second if d.scope == Scope.TICKER]
    assert {d.key for d in tickers} == {"T0", "T1", "T2", OTHER_KEY}
    assert sum(d.total for d in tickers if d.key == OTHER_KEY) == 7
    assert sum(d.total for d in tickers if d.key == "T0") == 2  # a known key keeps counting
    globals_ = [d for d in first + second if d.scope == Scope.GLOBAL]
    assert sum(d.total for d in globals_) == 11  # the global count is never capped
