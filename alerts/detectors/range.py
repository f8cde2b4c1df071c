"""Volume that is new relative to the key's own recent range, calibrated by a false-alarm budget.

Real counts (tweets, articles per ticker) are bursty and heavy-tailed: a parametric tail
that looks right on a simulator is off by orders of magnitude there (the negative-binomial
test at ``threshold=9`` still paged 0.5 times a key-day on NAB's realTweets). This detector
makes no tail assumption. Its decision is a conformal one: over the last ``N`` calm windows,
a new window exceeds all of them with probability at most ``1/(N+1)`` when nothing has
changed, so with ``N = windows per day / false_alarms_per_day`` "above everything this key
did in its last N windows" is a test whose per-window false-alarm rate is the budget —
measured on the key's own data, whatever its distribution. Bursts cluster, so alert
*starts* come rarer than that bound.

The score is the excess over that range in units of counting noise: ``2·(√x − √max)``
(the square root makes Poisson noise unit-variance), on two scales — the window itself
(bursts) and the sum over the trailing ``sustained_s`` seconds (rises too gradual for any
one window) — whichever is larger. It fires at ``threshold`` (one noise unit above the
range). With fewer than ``N`` windows of history the conformal bound is weaker, so a cold
key needs ``ln(N/n)/2`` more, and none fires before ``warmup`` (a day by default).

An episode is not learned while it fires: its windows are held out of the range, so a
sustained rise keeps firing until it is back inside the range it left (``resolve_after``
windows at or below ``resolve_threshold``) or until ``new_normal_s`` has passed, when its
windows join the range and it is the new normal.

>>> d = RangeDetector(step_s=300, false_alarms_per_day=1.0)
>>> for i in range(600):
...     _ = d.update(i * 300, 10 + (i * 7) % 11, 40)
>>> d.update(600 * 300, 28, 40)[-1].started, d.update(601 * 300, 20, 40)[-1].started
(True, False)
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from alerts.detectors.base import Detector, _check

_DAY = 86_400.0


def _root(x: float) -> float:
    """Signed square root: variance-stabilising for counts, monotone for any measurement."""
    return math.copysign(math.sqrt(abs(x)), x)


class RangeDetector(Detector):
    """Negative count above the key's calm range of the last ``N`` windows (see module doc)."""

    name = "range"
    signed_values = True  # any measurement has a range; counts are the case it is tuned for

    def __init__(
        self,
        *,
        false_alarms_per_day: float = 0.1,
        sustained_s: float = 7200.0,
        **gates: Any,
    ) -> None:
        step = gates.get("step_s")
        if step is None:
            raise ValueError("the range detector needs step_s (its horizon is in windows)")
        per_day = _DAY / _check("step_s", step, 1e-9)
        gates.setdefault("warmup", max(1, round(per_day)))
        gates.setdefault("threshold", 1.0)
        gates.setdefault("resolve_threshold", 0.0)
        gates.setdefault("resolve_after", max(1, round(3600.0 / step)))
        gates.setdefault("cooldown", max(1, round(6 * 3600.0 / step)))
        gates.setdefault("min_negative", 1)
        gates.setdefault("accumulate", False)  # the range is the evidence; no likelihood
        super().__init__(**gates)
        self.false_alarms_per_day = _check("false_alarms_per_day", false_alarms_per_day, 1e-6)
        self.sustained_s = _check("sustained_s", sustained_s, 0.0)
        self.horizon = max(2, math.ceil(per_day / self.false_alarms_per_day))
        self.scales = sorted({1, max(1, round(self.sustained_s / step))})
        self._t = 0  # committed windows so far (the index of the next one)
        self._recent: deque[float] = deque(maxlen=self.scales[-1] - 1 or 1)
        # Per scale, a monotonic deque of (index, sum): its head is the calm range's maximum.
        self._max: list[deque[tuple[int, float]]] = [deque() for _ in self.scales]
        self._held: list[tuple[int, list[float]]] = []  # a firing episode's windows
        self._hold_cap = min(self.horizon, self._new_normal)

    def _sums(self, value: float) -> list[float]:
        recent = list(self._recent)
        return [
            value + sum(recent[len(recent) - (k - 1) :]) if k > 1 else value for k in self.scales
        ]

    def _evaluate(self, ts: float, negative: int, total: int) -> tuple[float, float, float]:
        history = min(self._t, self.horizon)
        if history == 0:
            return 0.0, float(negative), 0.0
        cold = 0.5 * math.log(self.horizon / history)
        best = (-math.inf, float(negative), 0.0)
        for s, q in zip(self._sums(float(negative)), self._max, strict=True):
            if not q:
                continue
            top = q[0][1]
            excess = 2.0 * (_root(s) - _root(top)) - cold
            if excess > best[0]:
                best = (excess, s, top)
        return best

    def _push(self, index: int, sums: list[float]) -> None:
        for q, s in zip(self._max, sums, strict=True):
            while q and q[-1][1] <= s:
                q.pop()
            q.append((index, s))

    def _learn(self, ts: float, negative: int, total: int, weight: float) -> None:
        sums = self._sums(float(negative))
        if self._firing and len(self._held) < self._hold_cap:
            # The firing episode is held out of the range until it resolves.
            self._held.append((self._t, sums))
        else:
            for index, held in self._held:
                self._push(index, held)
            self._held = []
            self._push(self._t, sums)
        self._recent.append(float(negative))
        self._t += 1
        for q in self._max:
            while q and q[0][0] <= self._t - 1 - self.horizon:
                q.popleft()

    def _model_state(self) -> dict[str, Any]:
        return {
            "t": self._t,
            "recent": list(self._recent),
            "max": [[list(e) for e in q] for q in self._max],
            "held": [[i, s] for i, s in self._held],
        }

    def _load_model_state(self, state: dict[str, Any]) -> None:
        if len(state["max"]) != len(self.scales):
            raise ValueError(
                f"range state has {len(state['max'])} scales, this rule needs {len(self.scales)}"
            )
        self._t = int(state["t"])
        self._recent.clear()
        self._recent.extend(float(x) for x in state["recent"])
        self._max = [deque((int(i), float(s)) for i, s in q) for q in state["max"]]
        self._held = [(int(i), [float(x) for x in s]) for i, s in state["held"]]
        values = [*self._recent, *(s for q in self._max for _, s in q)]
        if not all(map(math.isfinite, values)):
            raise ValueError("range state holds non-finite numbers")
