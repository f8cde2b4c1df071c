import asyncio

from stream_helpers import make_scored

from stream.deadletter import DeadLetter, Reason
from stream.pipeline import DeadLetters
from stream.sinks.base import IndexResult, Store, StoreUnavailable
from stream.sinks.sqlite import SqliteStore
from stream.writer import StoreWriter


class Letters:
    def __init__(self):
        self.items: list[DeadLetter] = []

    async def put(self, letter):
        self.items.append(letter)


class FlakyStore(Store):
    """Wraps a real SqliteStore; fails whole calls, or some items, a set number of times."""

    name = "flaky"

    def __init__(self, inner, outages=0, item_failures=0, reject=()):
        self.inner, self.outages, self.item_failures, self.reject = (
            inner,
            outages,
            item_failures,
            set(reject),
        )
        self.calls = 0

    def index(self, articles):
        self.calls += 1
        if self.outages:
            self.outages -= 1
            raise StoreUnavailable("connection refused")
        result = IndexResult()
        ok = []
        for a in articles:
            if a.id in self.reject:
                result.rejected[a.id] = "mapper_parsing_exception"
            elif self.item_failures:
                self.item_failures -= 1
                result.retry.append(a)
            else:
                ok.append(a)
        inner = self.inner.index(ok)
        result.created, result.updated = inner.created, inner.updated
        return result

    def search(self, *a, **k):
        return self.inner.search(*a, **k)

    def rates(self, *a, **k):
        return self.inner.rates(*a, **k)

    def latest(self, n=20):
        return self.inner.latest(n)

    def get(self, i):
        return self.inner.get(i)

    def count(self):
        return self.inner.count()


async def no_sleep(_):
    await asyncio.sleep(0)


def run(coro):
    return asyncio.run(coro)


def make_writer(store, metrics, letters):
    return StoreWriter(store, metrics, DeadLetters(letters, metrics), sleep=no_sleep)


def test_outage_is_retried_without_loss_or_duplicates(tmp_path, metrics):
    inner = SqliteStore(tmp_path / "s.db")
    store, letters = FlakyStore(inner, outages=3, item_failures=2), Letters()
    articles = [make_scored(i) for i in range(5)]
    new = run(make_writer(store, metrics, letters).write(articles))
    assert [a.id for a in new] == [a.id for a in articles]
    assert inner.count() == 5 and store.calls == 5
    assert metrics.registry.get_sample_value("finpulse_store_errors_total", {"store": "flaky"}) == 4
    assert (
        metrics.registry.get_sample_value(
            "finpulse_end_to_end_lag_seconds_count", {"since": "fetched"}
        )
        == 5
    )


def test_only_new_articles_are_returned_and_duplicates_in_a_batch_count_once(tmp_path, metrics):
    inner = SqliteStore(tmp_path / "s.db")
    writer = make_writer(inner, metrics, Letters())
    run(writer.write([make_scored(1)]))
    new = run(writer.write([make_scored(1), make_scored(2), make_scored(2)]))
    assert [a.id for a in new] == [make_scored(2).id]


def test_rejected_documents_are_dead_lettered_not_retried(tmp_path, metrics):
    inner, letters = SqliteStore(tmp_path / "s.db"), Letters()
    bad = make_scored(2)
    store = FlakyStore(inner, reject={bad.id})
    new = run(make_writer(store, metrics, letters).write([make_scored(1), bad]))
    assert [a.id for a in new] == [make_scored(1).id] and store.calls == 1
    (letter,) = letters.items
    assert (
        letter.reason == Reason.STORE_REJECTED and b'"id":"%s"' % bad.id.encode() in letter.original
    )
    assert (
        metrics.registry.get_sample_value("finpulse_deadletter_total", {"reason": "store_rejected"})
        == 1
    )
