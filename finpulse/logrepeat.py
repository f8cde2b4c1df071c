"""Rate-limits repeated log lines, so an outage is a few lines per minute, not thousands.

A broker or store outage makes every client retry, and each retry logs the same line; that
buried the one useful line under 3,474 in 35 s. :class:`RepeatFilter` lets the first
``burst`` records of one call site (logger, level, message template) through per ``every_s``
and counts the rest; the next record let through says how many were held back.

>>> f = RepeatFilter(every_s=60, burst=2, clock=lambda: 0.0)
>>> rec = lambda: logging.LogRecord("kafka", logging.WARNING, "", 0, "down: %s", ("x",), None)
>>> [f.filter(rec()) for _ in range(4)]
[True, True, False, False]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RepeatFilter(logging.Filter):
    def __init__(
        self, every_s: float = 60.0, burst: int = 3, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.every_s, self.burst, self.clock = every_s, burst, clock
        self._seen: dict[tuple[str, int, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        start, shown, held = self._seen.get(key, (now, 0, 0))
        if now - start >= self.every_s:
            start, shown = now, 0
        if shown >= self.burst:
            self._seen[key] = (start, shown, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {self.every_s:.0f}s]"
        self._seen[key] = (start, shown + 1, 0)
        if len(self._seen) > 10_000:  # call sites are few; bounded all the same
            self._seen.clear()
        return True


def quiet_repeats(
    logger: logging.Logger | None = None, every_s: float = 60.0, burst: int = 3
) -> None:
    """Put one :class:`RepeatFilter` on every handler of ``logger`` (default: the root)."""
    repeat = RepeatFilter(every_s, burst)
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(repeat)
