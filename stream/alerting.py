"""The bridge from rate windows to the alerting core, shared by both drivers.

The engine writes SQLite and sends notifications, so it runs in a worker thread, one call
at a time; a window the rules cannot use is logged, never allowed to stop the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from finpulse.contracts import Alert, RateWindow

log = logging.getLogger(__name__)
TICK_EVERY_S = 5.0


class WindowHandler(Protocol):
    """The alerting core as the stream sees it (``alerts.engine.AlertEngine``)."""

    def process(self, window: RateWindow) -> list[Alert]: ...

    def tick(self, now: datetime | None = None) -> list[Alert]: ...


class Alerting:
    def __init__(self, engine: WindowHandler) -> None:
        self.engine = engine
        self._lock = asyncio.Lock()

    async def process(self, windows: Sequence[RateWindow]) -> list[Alert]:
        async with self._lock:
            return _logged(await asyncio.to_thread(self._process, windows))

    async def tick(self) -> list[Alert]:
        async with self._lock:
            try:
                return _logged(await asyncio.to_thread(self.engine.tick))
            except Exception:
                log.exception("alert tick failed")
                return []

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
