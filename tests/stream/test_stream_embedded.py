"""The embedded runner end to end in one process, with a keyword scorer double."""

import asyncio

from stream_helpers import FakeModels, make_article
from test_stream_writer import FlakyStore

from alerts.config import AlertsSettings
from finpulse.contracts import Scope
from stream.alerting import Alerting
from stream.config import StreamSettings
from stream.deadletter import JsonlDeadLetters, Reason
from stream.embedded import EmbeddedRunner
from stream.scoring import BatchScorer
from stream.sinks.sqlite import SqliteStore


class RecordingEngine:
    """An alert-engine double that records the windows it is given."""

    def __init__(self):
        self.windows = []

    def process(self, window):
        self.windows.append(window)
        return []

    def tick(self, now=None):
        return []

    def close(self):
        pass


async def aiter_(items):
    for item in items:
        yield item


def build(tmp_path, metrics, store=None, rates_state=None, **scorer_kw):
    settings = StreamSettings(
        batch_size=8,
        batch_within_s=0.01,
        queue_size=16,
        store_retry_initial_s=0.01,
        store_retry_max_s=0.02,
    )
    store = store or SqliteStore(tmp_path / "e.db")
    letters = JsonlDeadLetters(tmp_path / "dl.jsonl")
    engine = RecordingEngine()
    runner = EmbeddedRunner.create(
        settings,
        BatchScorer(FakeModels(**scorer_kw), metrics),
        store,
        letters,
        metrics,
        evidence_size=AlertsSettings().evidence_size,
        alerts=Alerting(engine),
        rates_state=rates_state,
    )
    return runner, store, letters, engine


def test_replay_is_scored_stored_and_rated_once(tmp_path, metrics):
    runner, store, _, engine = build(tmp_path, metrics)
    articles = [
        make_article(i, "Acme crash" if i % 4 == 0 else "steady", minutes=i / 10)
        for i in range(100)
    ]
    stats = asyncio.run(
        runner.run(runner.drain(aiter_(articles)), runner.drain(aiter_(articles[:30])))
    )
    assert (stats.received, stats.scored, stats.new) == (130, 130, 100)
    assert store.count() == 100
    assert store.search("crash").total == 25
    latest_global = {}
    for w in engine.windows:
        if w.scope == Scope.GLOBAL:
            latest_global[w.start] = w
    assert sum(w.total for w in latest_global.values()) == 100  # duplicates never counted
    assert sum(w.negative for w in latest_global.values()) == 25
    assert (
        metrics.registry.get_sample_value(
            "finpulse_articles_scored_total", {"topic": "markets", "sentiment": "negative"}
        )
        >= 25
    )


def test_a_restart_carries_on_counting_the_open_windows(tmp_path):
    from prometheus_client import CollectorRegistry

    from stream.metrics import StreamMetrics

    articles = [
        make_article(i, "Acme crash" if i % 2 else "calm", minutes=i / 30) for i in range(40)
    ]
    state, store = tmp_path / "rates.json", SqliteStore(tmp_path / "e.db")
    windows = []
    for part in (articles[:25], articles[15:]):  # the second run re-reads 10 it already stored
        runner, _, _, engine = build(
            tmp_path, StreamMetrics(CollectorRegistry()), store=store, rates_state=state
        )
        asyncio.run(runner.run(runner.drain(aiter_(part))))
        windows += [w for w in engine.windows if w.scope == Scope.GLOBAL]
    assert (windows[-1].start, windows[-1].total, windows[-1].negative) == (
        windows[0].start,
        40,
        20,
    )  # one window across the restart: neither forgotten nor counted twice


def test_poison_articles_go_to_the_deadletter_file(tmp_path, metrics):
    runner, store, letters, _ = build(tmp_path, metrics, fail_on="poison")
    articles = [make_article(1, "fine"), make_article(2, "poison"), make_article(3, "fine too")]
    stats = asyncio.run(runner.run(runner.drain(aiter_(articles))))
    assert store.count() == 2 and stats.deadletters == 1
    (letter,) = letters.read()
    assert letter.reason == Reason.SCORING_FAILED and make_article(2).id.encode() in letter.original


def test_store_outage_pauses_the_pipeline_and_loses_nothing(tmp_path, metrics):
    inner = SqliteStore(tmp_path / "e.db")
    flaky = FlakyStore(inner, outages=5)
    runner, _, _, _ = build(tmp_path, metrics, store=flaky)
    articles = [make_article(i) for i in range(60)]
    stats = asyncio.run(runner.run(runner.drain(aiter_(articles))))
    assert inner.count() == 60 and stats.new == 60
    assert metrics.registry.get_sample_value("finpulse_store_errors_total", {"store": "flaky"}) == 5


def test_a_failing_stage_stops_the_run_instead_of_hanging(tmp_path, metrics):
    runner, _, _, _ = build(tmp_path, metrics)

    async def explode(_articles):
        raise RuntimeError("disk on fire")

    runner.pipeline.writer.write = explode
    try:
        asyncio.run(
            asyncio.wait_for(
                runner.run(runner.drain(aiter_([make_article(i) for i in range(200)]))), 10
            )
        )
    except RuntimeError as exc:
        assert "disk on fire" in str(exc)
    else:
        raise AssertionError("the run should have failed")
