"""Negative volume against a (optionally seasonal) baseline: a negative-binomial count test."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from alerts.detectors.base import Detector, _check
from alerts.stats import negbinom_sf_log10

_SEASONS = {"none": 1, "hour_of_day": 24, "hour_of_week": 168}


class NegBinomialCountDetector(Detector):
    """Upper-tail negative-binomial test of the negative count in a window.

    Expected count = decayed level (half-life ``half_life`` windows) × the seasonal factor of
    the window's hour (``seasonality``: none, hour_of_day, hour_of_week — the Monday open is
    then ordinary), each factor adapting with a half-life of ``season_half_life`` windows
    falling in its hour (days, for hourly windows and hour_of_day). The variance is
    ``mean + d * mean**2`` where ``d`` adds the over-dispersion estimated online to the
    level's own uncertainty (a Gamma posterior over few observed events), so a ticker with
    one negative article a day does not page on two. The sequential evidence assumes a
    spike multiplies the expected count by ``shift`` and adds at least ``shift_min``
    negative articles per window (what matters on a quiet key).

    >>> d = NegBinomialCountDetector(warmup=5, step_s=3600)
    >>> for i in range(48):
    ...     _ = d.update(i * 3600, i % 2, i % 2)
    >>> d.update(48 * 3600, 12, 12)[-1].started
    True
    """

    name = "negbinom"

    def __init__(
        self,
        *,
        half_life: float = 288,
        seasonality: str = "none",
        season_half_life: float = 3.0,
        min_dispersion: float = 0.02,
        min_mean: float = 0.01,
        shift: float = 2.0,
        shift_min: float = 1.0,
        **gates: Any,
    ) -> None:
        super().__init__(**gates)
        if seasonality not in _SEASONS:
            raise ValueError(f"seasonality must be one of {sorted(_SEASONS)}, got {seasonality!r}")
        self.decay = 0.5 ** (1.0 / _check("half_life", half_life, 1.0))
        self.seasonality = seasonality
        self.season_rate = 1 - 0.5 ** (1.0 / _check("season_half_life", season_half_life, 0.1))
        self.min_dispersion = _check("min_dispersion", min_dispersion, 0.0)
        self.min_mean = _check("min_mean", min_mean, 1e-9)
        self.shift = _check("shift", shift, 1.0)
        self.shift_min = _check("shift_min", shift_min, 0.0)
        if shift == 1.0 and shift_min == 0.0:
            raise ValueError("shift > 1 or shift_min > 0: the spike must differ from the baseline")
        self._events = 0.0  # decayed deseasonalised count
        self._windows = 0.0  # decayed number of windows
        self._resid = 0.0
        self._scale = 0.0
        self._factors = [1.0] * _SEASONS[seasonality]  # unnormalised; mean kept in _fsum
        self._fsum = float(len(self._factors))

    def _bucket(self, ts: float) -> int:
        if self.seasonality == "none":
            return 0
        t = datetime.fromtimestamp(ts, UTC)
        return t.hour if self.seasonality == "hour_of_day" else t.weekday() * 24 + t.hour

    def _level(self) -> float:
        return self._events / self._windows if self._windows > 0 else 0.0

    def _mean(self, ts: float) -> float:
        return max(self.min_mean, self._level() * self._factor(self._bucket(ts)))

    def _factor(self, bucket: int) -> float:
        return self._factors[bucket] * len(self._factors) / self._fsum

    def _dispersion(self) -> float:
        """Over-dispersion estimated online plus the level's own uncertainty."""
        est = self._resid / self._scale if self._scale > 0 else 0.0
        return max(self.min_dispersion, min(5.0, est)) + 1.0 / (self._events + 1.0)

    def _evaluate(self, ts: float, negative: int, total: int) -> tuple[float, float, float]:
        mean = self._mean(ts)
        if negative == 0:
            return 0.0, 0.0, mean
        return -negbinom_sf_log10(negative, mean, self._dispersion()), float(negative), mean

    def _evidence(self, ts: float, negative: int, total: int) -> float:
        mean = self._mean(ts)
        spike = max(mean * self.shift, mean + self.shift_min)
        llr = negative * math.log(spike / mean) - (spike - mean)
        return llr / (1.0 + self._dispersion() * mean) / math.log(10.0)

    def _learn(self, ts: float, negative: int, total: int, weight: float) -> None:
        b = self._bucket(ts)
        level, mean = self._level(), self._mean(ts)
        if weight == 1.0 and self._windows > 0:
            self._resid = self.decay * self._resid + (negative - mean) ** 2 - mean
            self._scale = self.decay * self._scale + mean**2
        else:
            self._resid *= self.decay
            self._scale *= self.decay
        if self.seasonality != "none" and level > 0 and self._windows > 1:
            old = self._factor(b)
            # Always learned at full rate: a busy hour is anomalous the first time it recurs.
            ratio = min(20.0, negative / level)
            new = min(20.0, max(0.05, old + self.season_rate * (ratio - old)))
            raw = new * self._fsum / len(self._factors)
            self._fsum += raw - self._factors[b]
            self._factors[b] = raw
        x = negative / self._factor(b)
        self._events = self.decay * self._events + weight * x
        self._windows = self.decay * self._windows + weight

    def _learn_empty(self, ts: float, count: int) -> None:
        if self.seasonality != "none":
            return super()._learn_empty(ts, count)
        f = self.decay**count
        self._events, self._resid, self._scale = self._events * f, self._resid * f, self._scale * f
        self._windows = self._windows * f + (1 - f) / (1 - self.decay)

    def _model_state(self) -> dict[str, Any]:
        return {
            "events": self._events,
            "windows": self._windows,
            "resid": self._resid,
            "scale": self._scale,
            "factors": self._factors,
            "fsum": self._fsum,
        }

    def _load_model_state(self, state: dict[str, Any]) -> None:
        factors = [float(x) for x in state["factors"]]
        if len(factors) != len(self._factors):
            raise ValueError(
                f"negbinom state has {len(factors)} seasonal factors, "
                f"seasonality {self.seasonality!r} needs {len(self._factors)}"
            )
        self._factors, self._fsum = factors, float(state.get("fsum", sum(factors)))
        self._events, self._windows = float(state["events"]), float(state["windows"])
        self._resid, self._scale = float(state["resid"]), float(state["scale"])
        if not math.isfinite(self._events + self._windows + self._resid + self._scale):
            raise ValueError("negbinom state holds non-finite numbers")
