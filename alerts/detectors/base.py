"""The detector contract: ``update(timestamp, negative, total)`` → :class:`Decision`.

A detector sees one window per step. The latest window stays *pending* (it may be updated
again with larger counts while it is open) and is *committed* when a later window arrives
or :meth:`Detector.advance` says its time is over. Firing may start on a pending window,
because an open window that is already significant stays significant; resolving, learning
and cool-down happen only on committed windows, because a half-filled window always looks
calm. Missing windows are committed as empty ones (zero counts) when ``step_s`` is known.

Gates shared by every detector: warm-up (no decision before ``warmup`` windows, unless the
detector's score is a posterior predictive against a prior — ``judges_cold_start`` — which
then judges the first windows by the prior and the little data seen, its per-window score
only), minimum volume (``min_total`` articles and ``min_negative`` negative ones),
hysteresis (resolve only after ``resolve_after`` windows scoring below
``resolve_threshold``), and a cool-down of ``cooldown`` windows after a resolve so one event
pages once.

The incident is not learned: a window scoring at or above the threshold, and every window
of a firing episode, moves the baseline only with ``anomaly_weight``, so a sustained shift
keeps firing until it really returns. After ``new_normal_s`` seconds of firing the shift is
the new normal: the baseline becomes that of the episode's windows alone (a model learned
beside the held-out one since the episode began), and the alert resolves.

Scores are ``-log10`` p-values. With ``accumulate`` a sequential test runs beside them: a
CUSUM of each window's log10 likelihood ratio "spike" vs "baseline" (the detector's
``_evidence``, deflated by its over-dispersion), so a modest excess sustained over several
windows — none of them damning alone — fires as soon as the pooled evidence reaches the
threshold; calm windows drain it. Its alarm bound is the same number: a CUSUM with
threshold ``h`` (log10) raises a false alarm at most once in about ``10**h`` calm windows.

>>> from alerts.detectors import create
>>> def sustained(accumulate):  # share 0.3, then 14 of 30 negative for six windows
...     d = create("beta_binomial", step_s=300, warmup=5, accumulate=accumulate)
...     for i in range(100):
...         _ = d.update(i * 300, 8 + i % 3, 30)
...     return [d.update((100 + j) * 300, 14, 30)[-1].started for j in range(6)]
>>> sustained(True)  # no window is damning alone; five of them together are
[False, False, False, False, True, False]
>>> any(sustained(False))
False
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, ClassVar

from alerts.detectors.decision import Decision, LateWindowError, _check, epoch
from alerts.registry import Registry

_EMPTY_LOOP_CAP = 4032  # two weeks of 5-minute windows: longer gaps only decay the baseline


class Detector(ABC):
    """Base class of every detector: two pieces, as in river's anomaly detectors.

    *Scoring* — the model of "normal" — is the subclass's: ``_evaluate`` (score, observed,
    baseline of a window), ``_learn`` and the model's state; ``_evidence`` only for the
    CUSUM (``accumulate``). *Deciding* is shared: :meth:`fires` (threshold, volume and
    effect-size gates on one scored window) and the episode around it (warm-up, hysteresis,
    cool-down, the incident held out of the model). A calibrated detector puts its
    calibration where it belongs: ``range`` turns ``false_alarms_per_day`` into the horizon
    its score is measured against, so its decision stays "one noise unit above".

    A subclass with a ``name`` registers itself in :data:`DETECTORS` when it is defined
    (importing its module is enough); its keyword-only ``__init__`` parameters are the
    parameters a rule may set.
    """

    name: ClassVar[str]
    judges_cold_start: ClassVar[bool] = False  # score already weighs a prior vs little data
    signed_values: ClassVar[bool] = False  # accepts negative values (a measurement, not a count)

    def __init__(
        self,
        *,
        threshold: float = 3.5,
        resolve_threshold: float | None = None,
        resolve_after: int = 2,
        min_total: int = 0,
        min_negative: int = 3,
        warmup: int = 12,
        cooldown: int = 6,
        anomaly_weight: float = 0.1,
        accumulate: bool = True,
        new_normal_s: float = 86_400.0,
        step_s: float | None = None,
    ) -> None:
        self.threshold = _check("threshold", threshold, 0.0)
        self.resolve_threshold = _check(
            "resolve_threshold",
            threshold / 2 if resolve_threshold is None else resolve_threshold,
            -math.inf,
            threshold,
        )
        self.resolve_after = int(_check("resolve_after", resolve_after, 1))
        self.min_total = int(_check("min_total", min_total, 0))
        self.min_negative = int(_check("min_negative", min_negative, 0))
        self.warmup = int(_check("warmup", warmup, 0))
        self.cooldown = int(_check("cooldown", cooldown, 0))
        self.anomaly_weight = _check("anomaly_weight", anomaly_weight, 0.0, 1.0)
        self.step_s = None if step_s is None else _check("step_s", step_s, 1e-9)
        self.accumulate = bool(accumulate)
        self.new_normal_s = _check("new_normal_s", new_normal_s, 0.0)
        self._new_normal = (
            math.inf if self.step_s is None else math.ceil(self.new_normal_s / self.step_s)
        )
        self._episode = 0  # committed windows of the firing episode
        self._shadow: dict[str, Any] | None = None  # the model of the episode alone
        self._pristine: dict[str, Any] | None = None
        self._cusum = 0.0
        self._pending: tuple[float, int, int] | None = None
        self._last_ts: float | None = None
        self._firing = False
        self._calm = 0
        self._cooldown_left = 0
        self._seen = 0
        self._scored: tuple[tuple[float, int, int], tuple[float, float, float, float]] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in vars(cls):
            DETECTORS.add(cls.name, cls)

    # -- scoring: what subclasses provide ----------------------------------------------
    @abstractmethod
    def _evaluate(self, ts: float, negative: int, total: int) -> tuple[float, float, float]:
        """(score, observed, baseline) of one window against the current baseline."""

    def _evidence(self, ts: float, negative: int, total: int) -> float:
        """log10 likelihood ratio of the window under a spike vs the baseline (for the CUSUM)."""
        raise ValueError(
            f"detector {self.name!r} has no likelihood to accumulate: set accumulate=false"
        )

    @abstractmethod
    def _learn(self, ts: float, negative: int, total: int, weight: float) -> None:
        """Move the model of normal by one committed window, ``weight`` < 1 for anomalies."""

    @abstractmethod
    def _model_state(self) -> dict[str, Any]:
        """The model as plain JSON-able data (saved with the rule's series)."""

    @abstractmethod
    def _load_model_state(self, state: dict[str, Any]) -> None:
        """Restore what ``_model_state`` returned; raise ValueError on data it cannot use."""

    def _score(self, ts: float, negative: int, total: int) -> tuple[float, float, float, float]:
        """``_evaluate`` and ``_evidence``, remembered: a window is scored when it arrives and
        again when it is committed, and the model only changes at the commit."""
        key = (ts, negative, total)
        if self._scored is None or self._scored[0] != key:
            llr = self._evidence(ts, negative, total) if self.accumulate else 0.0
            self._scored = (key, (*self._evaluate(ts, negative, total), llr))
        return self._scored[1]

    def _significant(self, observed: float, baseline: float) -> bool:
        """An effect-size gate on top of the score; by default every significant score counts."""
        return True

    def _learn_empty(self, ts: float, count: int) -> None:
        """Learn ``count`` empty windows from ``ts`` on; subclasses may do it in O(1)."""
        for i in range(min(count, _EMPTY_LOOP_CAP)):
            self._learn(ts + i * (self.step_s or 0.0), 0, 0, 1.0)

    # -- the public API ----------------------------------------------------------------
    @property
    def firing(self) -> bool:
        return self._firing

    @property
    def pending_ts(self) -> float | None:
        return None if self._pending is None else self._pending[0]

    @property
    def last_ts(self) -> float | None:
        """Start of the latest window seen, pending or committed."""
        return self._pending[0] if self._pending is not None else self._last_ts

    @property
    def ready(self) -> bool:
        """Whether a window may start an alert now (warm-up over, or judged by the prior)."""
        return self.judges_cold_start or self._seen >= self.warmup

    def eligible(self, negative: int, total: int) -> bool:
        return total >= self.min_total and negative >= self.min_negative

    def fires(
        self, score: float, observed: float, baseline: float, negative: int, total: int
    ) -> bool:
        """The decision on one scored window, apart from the episode around it (warm-up,
        firing, cool-down): the threshold, the volume gates and the effect-size gate."""
        return (
            score >= self.threshold
            and self.eligible(negative, total)
            and self._significant(observed, baseline)
        )

    def update(self, timestamp: float | datetime, negative: int, total: int) -> list[Decision]:
        """Score the window starting at ``timestamp``; returns the decisions it caused.

        The last decision is the window's own; earlier ones come from committing older
        windows (a resolve can happen there).
        """
        ts = epoch(timestamp)
        if self._pristine is None:  # the model as constructed: where a new normal starts from
            self._pristine = copy.deepcopy(self._model_state())
        if (negative < 0 and not self.signed_values) or negative > total:
            raise ValueError(f"need 0 <= negative <= total, got {negative}/{total}")
        decisions: list[Decision] = []
        if self._pending is not None and ts != self._pending[0]:
            if ts < self._pending[0]:
                raise LateWindowError(f"window {ts} is older than the open one {self._pending[0]}")
            decisions += self._commit_through(ts)
        elif self._pending is None and self._last_ts is not None and ts <= self._last_ts:
            raise LateWindowError(f"window {ts} is not newer than committed {self._last_ts}")
        if self._pending is None and self._last_ts is not None:
            decisions += self._commit_empty_until(ts)
        self._pending = (ts, negative, total)
        score, observed, baseline, llr = self._score(ts, negative, total)
        if self._seen >= self.warmup:  # in a cold start only the window's own evidence counts
            score = max(score, self._accumulated(llr))
        started = (
            not self._firing
            and self._cooldown_left == 0
            and self.ready
            and self.fires(score, observed, baseline, negative, total)
        )
        if started:
            self._firing, self._calm, self._episode = True, 0, 0
            if math.isfinite(self._new_normal):
                self._shadow = copy.deepcopy(self._pristine)
        decisions.append(
            Decision(ts, score, observed, baseline, negative, total, self._firing, started)
        )
        return decisions

    def _accumulated(self, llr: float) -> float:
        return max(0.0, self._cusum + llr) if self.accumulate else 0.0

    def advance(self, until: float | datetime) -> list[Decision]:
        """Commit every window that ends at or before ``until`` (needs ``step_s``)."""
        if self.step_s is None:
            raise ValueError("advance() needs step_s to know when windows end")
        end = epoch(until)
        decisions: list[Decision] = []
        if self._pending is not None and self._pending[0] + self.step_s <= end:
            decisions += self._commit_through(self._pending[0] + self.step_s)
        if self._pending is None and self._last_ts is not None:
            nxt = self._last_ts + self.step_s
            closed = math.floor((end - nxt) / self.step_s + 1e-9)
            if closed > 0:
                decisions += self._commit_empty_until(nxt + closed * self.step_s)
        return decisions

    def flush(self) -> list[Decision]:
        """Commit the pending window (end of a backtest)."""
        if self._pending is None:
            return []
        return self._commit_through(self._pending[0] + (self.step_s or 1.0))

    def state_dict(self) -> dict[str, Any]:
        return {
            "detector": self.name,
            "pending": list(self._pending) if self._pending is not None else None,
            "last_ts": self._last_ts,
            "firing": self._firing,
            "calm": self._calm,
            "cooldown_left": self._cooldown_left,
            "seen": self._seen,
            "cusum": self._cusum,
            "episode": self._episode,
            "shadow": self._shadow,
            "model": self._model_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("detector") != self.name:
            raise ValueError(
                f"state belongs to detector {state.get('detector')!r}, not {self.name!r}"
            )
        if self._pristine is None:
            self._pristine = copy.deepcopy(self._model_state())
        pending = state["pending"]
        self._pending = (float(pending[0]), int(pending[1]), int(pending[2])) if pending else None
        self._last_ts = state["last_ts"]
        self._firing = bool(state["firing"])
        self._calm = int(state["calm"])
        self._cooldown_left = int(state["cooldown_left"])
        self._seen = int(state["seen"])
        self._cusum = float(state.get("cusum", 0.0))
        self._episode = int(state.get("episode", 0))
        self._shadow = state.get("shadow")
        self._scored = None
        self._load_model_state(state["model"])

    # -- committing --------------------------------------------------------------------
    def _commit_through(self, next_ts: float) -> list[Decision]:
        """Commit the pending window, then the empty ones before ``next_ts``."""
        assert self._pending is not None
        ts, negative, total = self._pending
        self._pending = None
        own = self._commit(ts, negative, total)
        return ([own] if own.resolved else []) + self._commit_empty_until(next_ts)

    def _commit_empty_until(self, next_ts: float) -> list[Decision]:
        if self.step_s is None or self._last_ts is None:
            return []
        missing = round((next_ts - self._last_ts) / self.step_s) - 1
        decisions: list[Decision] = []
        first = self._last_ts + self.step_s
        # Walk empty windows one by one only while the gates still change; then bulk-learn.
        walk = min(missing, self.resolve_after + self.cooldown + 1)
        for i in range(walk):
            decisions.append(self._commit(first + i * self.step_s, 0, 0))
        if missing > walk:
            self._learn_empty(first + walk * self.step_s, missing - walk)
            self._seen += missing - walk
            self._cooldown_left = max(0, self._cooldown_left - (missing - walk))
            self._cusum = 0.0  # a long silence ends any build-up
            self._last_ts = first + (missing - 1) * self.step_s
        return [d for d in decisions if d.resolved]

    def _learn_shadow(self, ts: float, negative: int, total: int, weight: float) -> None:
        """Learn a firing window twice: held out of the model, and at full weight into a
        shadow model of the episode alone, begun fresh when it started. After
        ``new_normal_s`` the shadow — the baseline of the shifted level — becomes the model."""
        assert self._shadow is not None
        model = copy.deepcopy(self._model_state())
        self._load_model_state(self._shadow)
        self._learn(ts, negative, total, 1.0)
        if self._episode >= self._new_normal:
            self._shadow, self._cusum = None, 0.0
            return
        self._shadow = copy.deepcopy(self._model_state())
        self._load_model_state(model)
        self._learn(ts, negative, total, weight)

    def _commit(self, ts: float, negative: int, total: int) -> Decision:
        score, observed, baseline, llr = self._score(ts, negative, total)
        self._scored = None  # the model learns this window now
        # Capped at the threshold: evidence beyond "enough to fire" must not delay the resolve.
        self._cusum = min(self._accumulated(llr), self.threshold)
        resolved = False
        # Before a detector may judge, nothing it sees is an anomaly: it all is the baseline.
        weight = self.anomaly_weight if score >= self.threshold and self.ready else 1.0
        if self._firing:
            self._episode += 1
            calm = score < self.resolve_threshold or not self.eligible(negative, total)
            self._calm = self._calm + 1 if calm else 0
            if self._calm >= self.resolve_after:
                self._firing, resolved, self._cooldown_left = False, True, self.cooldown
                self._cusum, self._shadow = 0.0, None
            else:
                weight = self.anomaly_weight  # the incident is not learned
        elif self._cooldown_left > 0:
            self._cooldown_left -= 1
        if self._shadow is not None:
            self._learn_shadow(ts, negative, total, weight)
        else:
            self._learn(ts, negative, total, weight)
        self._seen += 1
        self._last_ts = ts
        return Decision(
            ts,
            max(score, self._cusum),
            observed,
            baseline,
            negative,
            total,
            self._firing,
            resolved=resolved,
        )


DETECTORS: Registry[type[Detector]] = Registry("detector")
