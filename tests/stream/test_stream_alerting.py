"""The bridge to the alert engine: a slow delivery never holds up the stream."""

import asyncio
import threading

from stream_helpers import make_scored

from stream.aggregate import RateCounter
from stream.alerting import Alerting


class SlowDeliveryEngine:
    """``tick`` blocks (a receiver timing out) until released; ``process`` is instant."""

    def __init__(self):
        self.release, self.windows, self.ticks = threading.Event(), [], 0

    def process(self, window):
        self.windows.append(window)
        return []

    def tick(self, now=None):
        self.ticks += 1
        self.release.wait(10)
        return []

    def close(self):
        pass


def test_windows_reach_the_engine_while_a_tick_is_delivering():
    engine = SlowDeliveryEngine()
    windows = RateCounter(300).count([make_scored(1, tickers=["ACME"])])

    async def scenario():
        alerting = Alerting(engine)
        delivering = asyncio.create_task(alerting.tick())
        await asyncio.sleep(0.1)
        await asyncio.wait_for(alerting.process(windows), 2)  # not stuck behind the tick
        assert await alerting.tick() == [] and engine.ticks == 1  # no pile-up of ticks
        final = asyncio.create_task(alerting.tick(wait=True))  # a final flush waits its turn
        await asyncio.sleep(0.1)
        engine.release.set()
        await asyncio.wait_for(asyncio.gather(delivering, final), 5)
        return engine.ticks

    assert asyncio.run(scenario()) == 2
    assert engine.windows == windows
