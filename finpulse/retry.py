"""The one backoff policy: capped exponential delays with jitter.

Every retry in finpulse waits by this rule (HTTP fetches, Kafka deliveries, feed polls, store
writes, the alert outbox), so "how long until the next try" has one definition. Jitter is the
share of the delay that is random: 0 waits exactly, 1 is "full jitter" (uniform up to the
delay), which spreads many clients that failed together so they do not retry in step.

>>> [backoff_s(n, 0.5, 4.0) for n in range(5)]
[0.5, 1.0, 2.0, 4.0, 4.0]
>>> 0 <= backoff_s(3, 0.5, 30.0, jitter=1.0, rng=random.Random(1)) <= 4.0
True
"""

from __future__ import annotations

import math
import random


def backoff_s(
    attempt: int,
    base_s: float,
    max_s: float = math.inf,
    *,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed try number ``attempt`` (0 = the first failure).

    ``min(max_s, base_s * 2**attempt)``, of which a random share up to ``jitter`` is taken off.
    """
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter is a share of the delay, 0..1; got {jitter}")
    delay = min(max_s, base_s * 2.0**attempt) if attempt < 1024 else max_s
    if jitter:
        delay *= 1.0 - jitter * (rng or random).random()
    return delay


class Backoff:
    """The delays of one run of failures, for loops that keep no attempt counter.

    >>> b = Backoff(0.5, 4.0, jitter=0.0)
    >>> [b.next() for _ in range(5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    """

    def __init__(self, initial_s: float, max_s: float, jitter: float = 0.5) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got {initial_s}, {max_s}")
        self.initial_s, self.max_s, self.jitter = initial_s, max_s, jitter
        self.attempt = 0

    def next(self) -> float:
        delay = backoff_s(self.attempt, self.initial_s, self.max_s, jitter=self.jitter)
        self.attempt += 1
        return delay
