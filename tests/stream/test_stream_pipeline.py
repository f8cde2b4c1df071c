"""The batch step both transports share (``stream/pipeline.py``), driven with small generated
messages: no Kafka, no Faust, a keyword scorer double and a real SQLite store."""

import asyncio
import json

import pytest
from stream_helpers import FakeModels, make_article, make_scored
from test_stream_embedded import RecordingEngine
from test_stream_writer import FlakyStore, Letters

from finpulse.contracts import RateWindow, Scope, encode
from stream.aggregate import RateAggregator, RateCounter
from stream.alerting import Alerting
from stream.config import StreamSettings
from stream.deadletter import Reason
from stream.pipeline import Message, Pipeline, RunningWindows, decode
from stream.scoring import BatchScorer
from stream.sinks.sqlite import SqliteStore


def messages(values, topic="news.raw", partition=2):
    """Messages as a transport hands them over: offsets from 10, keys from the offsets."""
    return [
        Message(v, key=b"k%d" % i, topic=topic, partition=partition, offset=10 + i)
        for i, v in enumerate(values)
    ]


@pytest.fixture
def built(tmp_path, metrics):
    letters, store = Letters(), SqliteStore(tmp_path / "p.db")

    def make(store=store, **scorer_kw):
        scorer = BatchScorer(FakeModels(**scorer_kw), metrics)
        return Pipeline(
            scorer, store, letters, metrics, counter=RateCounter(300),
            retry_initial_s=0.001, retry_max_s=0.002,
        )  # fmt: skip

    yield make, letters, store
    store.close()


def dead_total(metrics, reason):
    return metrics.registry.get_sample_value("finpulse_deadletter_total", {"reason": reason})


def test_score_dead_letters_each_bad_message_with_its_reason_and_scores_the_rest(built, metrics):
    make, letters, _ = built
    good = make_article(1, "Acme crash")
    newer_minor = json.loads(encode(make_article(2)))
    newer_minor.update(schema_version="1.1", region="emea")  # an unknown optional field
    newer_major = json.loads(encode(make_article(3)))
    newer_major.update(schema_version="2.0")
    no_title = json.loads(encode(make_article(4)))
    del no_title["title"]
    values = [b"{not json", encode(good), json.dumps(newer_minor).encode(),
              json.dumps(newer_major).encode(), json.dumps(no_title).encode(), None]  # fmt: skip
    pipeline = make()
    out = asyncio.run(pipeline.score(messages(values)))

    assert [a.id for a in out.articles] == [good.id, newer_minor["id"]]
    assert [a.sentiment.value for a in out.articles] == ["negative", "neutral"]
    assert out.originals[good.id] == values[1]  # the bytes as they arrived, for a dead letter
    got = [(x.reason.value, x.original, x.offset, x.key, x.topic, x.partition)
           for x in letters.items]  # fmt: skip
    assert got == [
        ("malformed", values[0], 10, b"k0", "news.raw", 2),
        ("invalid", values[3], 13, b"k3", "news.raw", 2),
        ("invalid", values[4], 14, b"k4", "news.raw", 2),
        ("malformed", b"", 15, b"k5", "news.raw", 2),  # a tombstone (no value)
    ]
    assert "newer major" in letters.items[1].error and "title" in letters.items[2].error
    assert (dead_total(metrics, "malformed"), dead_total(metrics, "invalid")) == (2, 2)
    assert pipeline.dead.count == 4


def test_a_poison_article_fails_alone_and_keeps_the_bytes_it_arrived_as(built, metrics):
    make, letters, _ = built
    values = [encode(make_article(i, "poison pill" if i == 1 else f"fine {i}")) for i in range(3)]
    # a newer minor's extra field: the letter keeps it, though the decoded article drops it
    poison = json.loads(values[1])
    poison.update(schema_version="1.1", region="emea")
    values[1] = json.dumps(poison).encode()
    out = asyncio.run(make(fail_on="poison").score(messages(values)))
    assert [a.id for a in out.articles] == [make_article(0).id, make_article(2).id]
    [letter] = letters.items
    assert (letter.reason, letter.original, letter.offset) == (Reason.SCORING_FAILED, values[1], 11)
    assert "cannot score" in letter.error and dead_total(metrics, "scoring_failed") == 1


def test_articles_without_messages_are_dead_lettered_as_encoded(built):
    make, letters, _ = built
    articles = [make_article(1, "poison"), make_article(2, "fine")]
    out = asyncio.run(make(fail_on="poison").score_articles(articles))
    assert [a.id for a in out.articles] == [articles[1].id] and out.originals == {}
    [letter] = letters.items
    assert letter.original == encode(articles[0]) and letter.topic is None


def test_store_counts_only_articles_new_to_the_store(built, metrics):
    make, letters, store = built
    pipeline = make()
    scored = [make_scored(i, "negative", 0.9, tickers=["ACME"]) for i in range(3)]
    batch = [encode(a) for a in [*scored, scored[0]]] + [b"[]"]
    first = asyncio.run(pipeline.store(messages(batch, topic="news.scored")))
    again = asyncio.run(pipeline.store(messages([encode(scored[1])], topic="news.scored")))
    assert store.count() == 3
    assert sorted(a.id for a in first.new) == sorted(a.id for a in scored)
    assert again.new == [] and again.deltas == []  # a redelivery counts nothing
    [glob] = [d for d in first.deltas if d.scope == Scope.GLOBAL]
    assert (glob.total, glob.negative, len(glob.evidence)) == (3, 3, 3)
    assert {(d.scope.value, d.key) for d in first.deltas} == {
        ("global", "all"), ("topic", "markets"), ("source", "wire"), ("ticker", "ACME"),
    }  # fmt: skip
    assert [x.reason.value for x in letters.items] == ["malformed"]  # the JSON array


def test_store_waits_out_an_outage_and_dead_letters_a_refused_document(tmp_path, built, metrics):
    make, letters, _ = built
    inner = SqliteStore(tmp_path / "flaky.db")
    bad = make_scored(9)
    pipeline = make(store=FlakyStore(inner, outages=3, reject={bad.id}))
    out = asyncio.run(pipeline.store_articles([make_scored(1), bad, make_scored(2)]))
    assert inner.count() == 2 and len(out.new) == 2
    assert metrics.registry.get_sample_value("finpulse_store_errors_total", {"store": "flaky"}) == 3
    [letter] = letters.items
    assert letter.reason == Reason.STORE_REJECTED and bad.id.encode() in letter.original
    assert dead_total(metrics, "store_rejected") == 1 and pipeline.dead.count == 1
    inner.close()


def deltas(*articles):
    return [d for d in RateCounter(300).count(list(articles)) if d.scope == Scope.GLOBAL]


class SavedWhenProcessed(RecordingEngine):
    """Records whether the state file existed when the engine was given each window."""

    def __init__(self, state):
        super().__init__()
        self.state, self.saved = state, []

    def process(self, window):
        self.saved.append(self.state.exists())
        return super().process(window)


def test_running_windows_alert_before_saving_and_skip_by_offset(tmp_path):
    state = tmp_path / "w.json"
    engine = SavedWhenProcessed(state)
    rate_args = StreamSettings().rate_args(5)
    windows = RunningWindows.restore(state, rate_args, Alerting(engine), offsets=True)
    asyncio.run(windows.fold(deltas(make_scored(1, "negative", 0.9)), offset=4))
    assert engine.saved == [False]  # the engine has the window before the state says so
    asyncio.run(windows.fold([], offset=7))  # undecodable messages still move the offset on
    saved = json.loads(state.read_text())
    assert saved["offset"] == 7 and list(saved["rates"]["keys"]) == ["global|all"]
    again = RunningWindows.restore(state, rate_args, offsets=True)
    folded = asyncio.run(again.fold(deltas(make_scored(2)), offset=8))
    assert again.offset == 8 and [(w.total, w.negative) for w in folded.windows] == [(2, 1)]


def test_running_windows_without_offsets_save_the_windows_alone(tmp_path):
    state = tmp_path / "rates.json"
    rate_args = StreamSettings().rate_args(5)
    windows = RunningWindows.restore(state, rate_args)
    asyncio.run(windows.fold([]))
    assert not state.exists()  # nothing counted, nothing written
    asyncio.run(windows.fold(deltas(make_scored(1), make_scored(2, "negative", 0.8))))
    restored = RateAggregator.from_dict(json.loads(state.read_text()), 300)
    [(key, kw)] = restored.keys.items()
    assert key == (Scope.GLOBAL, "all") and [w.total for w in kw.windows.values()] == [2]


def test_decode_keeps_each_value_with_its_message(built, metrics):
    make, _, _ = built
    window = deltas(make_scored(1))[0]
    batch = messages([encode(window), b"nope"], topic="news.rates", partition=0)
    decoded = asyncio.run(decode(RateWindow, batch, make().dead))
    assert [(w.total, m.offset) for w, m in decoded] == [(1, 10)]
