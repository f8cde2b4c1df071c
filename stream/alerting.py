"""The bridge from rate windows to the alerting core, shared by both drivers.

The engine writes SQLite and delivers notifications over the network, so every call runs
in a worker thread and the event loop never waits on it. ``process`` only records state
changes and queues notifications in the engine's outbox; ``tick`` (every
``stream.alert_tick_s``) closes windows whose time is over and delivers the outbox. A slow
receiver delays the next tick, never the stream: ticks do not queue up behind one another,
and windows keep reaching the engine (whose own lock keeps its state consistent).
A window the rules cannot use is logged, never allowed to stop the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from finpulse.contracts import Alert, RateWindow

log = logging.getLogger(__name__)


class WindowHandler(Protocol):
    """The alerting core as the stream sees it (``alerts.engine.AlertEngine``)."""

    def process(self, window: RateWindow) -> list[Alert]: ...

    def tick(self, now: datetime | None = None) -> list[Alert]: ...

    def close(self) -> None: ...


class Alerting:
    def __init__(self, engine: WindowHandler) -> None:
        self.engine = engine
        self._in_order = asyncio.Lock()  # windows reach the engine in stream order
        self._ticking = asyncio.Lock()

    async def process(self, windows: Sequence[RateWindow]) -> list[Alert]:
        if not windows:
            return []
        async with self._in_order:
            return _logged(await asyncio.to_thread(self._process, windows))

    async def tick(self, *, wait: bool = False) -> list[Alert]:
        """One tick; while the previous one is still delivering, nothing — or, with ``wait``
        (a final flush), one more tick after it, so nothing queued before is left behind."""
        if self._ticking.locked() and not wait:
            return []
        async with self._ticking:
            try:
                return _logged(await asyncio.to_thread(self.engine.tick))
            except Exception:
                log.exception("alert tick failed")
                return []

    async def close(self) -> None:
        async with self._in_order, self._ticking:
            await asyncio.to_thread(self.engine.close)

    def _process(self, windows: Sequence[RateWindow]) -> list[Alert]:
        out: list[Alert] = []
        for w in windows:
            try:
                out += self.engine.process(w)
            except Exception:
                log.exception("alerting could not take window %s:%s %s", w.scope, w.key, w.start)
        return out


def _logged(alerts: list[Alert]) -> list[Alert]:
    for a in alerts:
        log.info("alert %s: %s %s:%s (%d/%d negative)", a.state, a.rule, a.scope, a.key,
                 a.negative, a.total)  # fmt: skip
    return alerts
