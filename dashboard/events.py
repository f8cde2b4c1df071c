"""The live feed of the page: server-sent events whenever articles arrive or alerts change.

Clients share one snapshot per poll interval, so ten open tabs cost the store what one does.
:meth:`EventStream.stop` ends every open stream, so the server can shut down promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from finpulse.contracts import AlertState, utcnow

if TYPE_CHECKING:
    from dashboard.services import Services

HEARTBEAT_S = 15.0


class EventStream:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.interval = services.api.poll_interval_s
        self._stopping = asyncio.Event()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    def stop(self) -> None:
        self._stopping.set()

    def _snapshot(self) -> dict[str, Any]:
        from dashboard.schemas import AlertOut

        s = self.services
        now = utcnow()
        firing = [
            AlertOut.of(r, s.alerts.silenced(r.alert, now) is not None).model_dump(mode="json")
            for r in s.alerts.list_alerts(AlertState.FIRING, limit=200)
        ]
        return {"articles": s.store.count(), "firing": firing}

    async def snapshot(self) -> dict[str, Any]:
        async with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.interval / 2:
                self._cached = (now, await asyncio.to_thread(self._snapshot))
            return self._cached[1]

    async def follow(self) -> AsyncIterator[str]:
        """SSE frames for one client: an ``update`` on every change, comments as heartbeats."""
        last: dict[str, Any] | None = None
        quiet_since = time.monotonic()
        while not self._stopping.is_set():
            snap = await self.snapshot()
            if snap != last:
                new = snap["articles"] - (last["articles"] if last else snap["articles"])
                yield f"event: update\ndata: {json.dumps({**snap, 'new': new})}\n\n"
                last, quiet_since = snap, time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT_S:
                yield ": ping\n\n"
                quiet_since = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
