"""The Faust agents driven by ``agent.test_context()``: no Kafka, sends captured."""

import asyncio
import json

import pytest
from stream_helpers import FakeModels, make_article, make_scored

from app.settings import Settings
from finpulse.contracts import RateWindow, Scope, ScoredArticle, encode
from stream.aggregate import RateCounter
from stream.faust_app import create_app
from stream.scoring import BatchScorer
from stream.sinks.sqlite import SqliteStore


class Sent:
    """Replaces a topic's ``send``: records (key, value, headers), resolves at once."""

    def __init__(self):
        self.messages = []

    async def __call__(self, key=None, value=None, headers=None, **_):
        self.messages.append((key, value, dict(headers or [])))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


@pytest.fixture
def built(tmp_path, metrics):
    settings = Settings(
        kafka={"bootstrap_servers": "127.0.0.1:1"},  # nothing listens: proves no broker is used
        stream={
            "batch_size": 4,
            "batch_within_s": 0.05,
            # test_context() hands every message to each actor; Kafka shares them out.
            "score_concurrency": 1,
            "app_id": "finpulse-unit",
            "faust_dir": tmp_path,
        },
    )
    store = SqliteStore(tmp_path / "s.db")
    sa = create_app(settings, BatchScorer(FakeModels(), metrics), store, metrics, web_enabled=False)
    sent = {name: Sent() for name in ("scored", "rates", "deadletter")}
    for name, fake in sent.items():
        getattr(sa, name).send = fake
    yield sa, sent, store
    store.close()


async def put_all(agent, values, done=None, timeout=20.0):
    """Put ``values``; wait until ``done()`` (or 0.5 s without one) — bounded for a busy box."""
    async with agent.test_context() as ctx:
        for v in values:
            await ctx.put(key=b"k", value=v, wait=False)
        await asyncio.sleep(0.5)
        deadline = asyncio.get_running_loop().time() + timeout
        while done is not None and not done() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)


def test_score_agent_emits_one_scored_article_per_article_keyed_by_id(built):
    sa, sent, _ = built
    articles = [make_article(i, "Acme crash" if i % 2 else "calm") for i in range(6)]
    done = lambda: len(sent["scored"].messages) == 6  # noqa: E731
    asyncio.run(put_all(sa.score, [encode(a) for a in articles], done=done))
    out = [(k, ScoredArticle.model_validate_json(v)) for k, v, _ in sent["scored"].messages]
    assert [k.decode() for k, _ in out] == [a.id for a in articles]
    assert [s.sentiment.value for _, s in out] == ["neutral", "negative"] * 3
    assert {s.model_version for _, s in out} == {"v1"}


def test_malformed_messages_are_dead_lettered_and_the_agent_keeps_going(built, metrics):
    sa, sent, _ = built
    good = make_article(1)
    asyncio.run(
        put_all(
            sa.score,
            [b"{broken", b'{"id": "x"}', encode(good)],
            done=lambda: sent["scored"].messages and len(sent["deadletter"].messages) == 2,
        )
    )
    assert [ScoredArticle.model_validate_json(v).id for _, v, _ in sent["scored"].messages] == [
        good.id
    ]
    letters = sent["deadletter"].messages
    assert [v for _, v, _ in letters] == [b"{broken", b'{"id": "x"}']
    assert [h["finpulse.deadletter.reason"] for _, _, h in letters] == [b"malformed", b"invalid"]
    assert (
        metrics.registry.get_sample_value("finpulse_deadletter_total", {"reason": "invalid"}) == 1
    )


def test_a_newer_minor_is_scored_and_a_newer_major_dead_lettered(built, metrics):
    """Issue 19 item 6: a worker one minor version behind its producers keeps the stream;
    only a message of a newer major goes to the dead letters, saying why."""
    sa, sent, _ = built
    newer_minor = json.loads(encode(make_article(1, "Acme crash")))
    newer_minor.update(schema_version="1.1", region="emea")
    newer_major = json.loads(encode(make_article(2)))
    newer_major.update(schema_version="2.0")
    done = lambda: sent["scored"].messages and sent["deadletter"].messages  # noqa: E731
    values = [json.dumps(newer_minor).encode(), json.dumps(newer_major).encode()]
    asyncio.run(put_all(sa.score, values, done=done))
    [(key, value, _)] = sent["scored"].messages
    scored = ScoredArticle.model_validate_json(value)
    assert (key.decode(), scored.title, scored.sentiment.value) == (
        newer_minor["id"],
        "Acme crash",
        "negative",
    )
    [(_, original, headers)] = sent["deadletter"].messages
    assert original == values[1]
    assert headers["finpulse.deadletter.reason"] == b"invalid"
    assert headers["finpulse.deadletter.error"].startswith(
        b"Article.schema_version: schema_version 2.0 is a newer major than this finpulse reads"
    )


def test_a_scored_article_over_the_producer_limit_is_dead_lettered_not_lost(built, metrics):
    """JSON escapes a control character as six bytes: a body within the contract's limit can
    score to a message larger than the producer may send. It goes to the dead-letter topic
    (the article as it arrived, with the reason); the rest of its batch goes on."""
    sa, sent, _ = built
    poison = make_article(1, "Acme crash", body="\x01" * 170_000)
    good = [make_article(i) for i in (2, 3)]
    done = lambda: len(sent["scored"].messages) == 2 and sent["deadletter"].messages  # noqa: E731
    asyncio.run(put_all(sa.score, [encode(a) for a in (good[0], poison, good[1])], done=done))
    assert [k.decode() for k, _, _ in sent["scored"].messages] == [a.id for a in good]
    [(key, value, headers)] = sent["deadletter"].messages
    assert key == poison.id.encode()
    assert headers["finpulse.deadletter.reason"] == b"undeliverable"
    assert b"over the producer's 1000000-byte limit" in headers["finpulse.deadletter.error"]
    assert len(value) < 1_000_000 and value.startswith(encode(poison)[:1000])
    labels = {"reason": "undeliverable"}
    assert metrics.registry.get_sample_value("finpulse_deadletter_total", labels) == 1


def test_index_agent_stores_once_and_counts_only_new_articles(built):
    sa, sent, store = built
    scored = [make_scored(i, "negative", 0.9, tickers=["ACME"]) for i in range(3)]
    asyncio.run(put_all(sa.index, [encode(a) for a in [*scored, scored[0]]]))
    asyncio.run(put_all(sa.index, [encode(scored[1])]))  # a redelivery after a crash
    assert store.count() == 3
    deltas = [RateWindow.model_validate_json(v) for _, v, _ in sent["rates"].messages]
    global_total = sum(d.total for d in deltas if d.scope == Scope.GLOBAL)
    assert global_total == 3
    keys = {k.decode() for k, _, _ in sent["rates"].messages}
    assert keys == {"global|all", "topic|markets", "source|wire", "ticker|ACME"}


def test_alerter_folds_deltas_into_running_windows_for_the_one_engine(tmp_path, metrics):
    from test_stream_embedded import RecordingEngine

    from stream.alerting import Alerting
    from stream.faust_app import create_alerter_app

    settings = Settings(
        kafka={"bootstrap_servers": "127.0.0.1:1"},
        stream={"batch_size": 4, "batch_within_s": 0.05, "faust_dir": tmp_path},
    )
    counter = RateCounter(300)
    d1 = [d for d in counter.count([make_scored(1, "negative", 0.9)]) if d.scope == Scope.GLOBAL]
    d2 = [d for d in counter.count([make_scored(2), make_scored(3)]) if d.scope == Scope.GLOBAL]
    engines, letters = [], []
    for _ in range(2):  # the second alerter restarts from the saved state
        engine = RecordingEngine()
        alerter = create_alerter_app(
            settings, Alerting(engine), metrics, port=1, state=tmp_path / "w.json",
            web_enabled=False,
        )  # fmt: skip
        alerter.deadletter.send = dead = Sent()
        asyncio.run(put_all(alerter.alert, [encode(d) for d in d1 + d2] + [b"{oops"]))
        engines.append(engine)
        letters.append([v for _, v, _ in dead.messages])
    assert [(w.total, w.negative) for w in engines[0].windows] == [(1, 1), (3, 1)]
    assert engines[0].windows[-1].evidence[0].id == make_scored(1).id
    assert letters[0] == [b"{oops"]
    assert engines[1].windows == [] and letters[1] == []  # redelivered offsets are skipped
    assert alerter.rates.partitions == 1  # one alerter consumes every key


def test_worker_producer_lingers_to_fill_requests(built):
    sa, _, _ = built
    assert sa.app.conf.producer_linger == Settings().kafka.producer_linger_s == 0.01


def test_consumer_lag_skips_partitions_not_fetched_yet_or_revoked_mid_report(metrics):
    """Seen in the two-worker integration test: right after a rebalance a partition has no
    highwater yet, and one revoked mid-report makes aiokafka raise; the lag report used to
    crash the timer, and with it the worker."""
    from collections import namedtuple

    from aiokafka.errors import IllegalStateError

    from stream.faust_app import report_lag

    TP = namedtuple("TP", "topic partition")
    fetched, fresh = TP("news.raw", 0), TP("news.raw", 1)
    # Revoked while the report runs: aiokafka asserts in highwater(), raises in position().
    gone, going = TP("news.raw", 2), TP("news.raw", 3)

    class Consumer:
        def __init__(self):
            self._committed_offset = {fetched: 5}

        def assignment(self):
            return [fetched, fresh, gone, going]

        def highwater(self, tp):
            assert tp != gone, "Partition is not assigned"
            return {fetched: 9, going: 7}.get(tp)

        async def position(self, tp):
            raise IllegalStateError(f"Partition {tp} is not assigned")

    metrics.consumer_lag.labels("news.raw", "1").set(3)  # reported before the rebalance
    now = asyncio.run(report_lag(Consumer(), metrics, {("news.raw", "1")}))
    assert now == {("news.raw", "0")}
    lag = lambda p: metrics.registry.get_sample_value(  # noqa: E731
        "finpulse_consumer_lag", {"topic": "news.raw", "partition": p}
    )
    assert (lag("0"), lag("1")) == (4, None)
