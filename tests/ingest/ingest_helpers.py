"""Shared by the ingest tests: a clock and sleep that record waits instead of sleeping."""

from __future__ import annotations


class FakeTime:
    """Injected as ``clock``/``sleep``: politeness and retry waits are recorded, not slept."""

    def __init__(self, start: float = 0.0) -> None:
        self.now, self.slept = start, []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds
