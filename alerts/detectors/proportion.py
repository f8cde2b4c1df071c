"""Negative share against a slowly adapting baseline, judged by the window's article count."""

from __future__ import annotations

import math
from typing import Any

from alerts.detectors.base import Detector, _check
from alerts.stats import betabinom_sf_log10


class BetaBinomialDetector(Detector):
    """Beta-binomial test of ``negative`` out of ``total`` against an exponentially decayed share.

    The baseline is the decayed count of negative and other articles (half-life
    ``half_life`` windows), so 3 of 4 negative articles is weak evidence and 300 of 400 is
    strong. Windows vary more than a binomial allows (news clusters), so the
    between-window over-dispersion is estimated online by the method of moments and widens
    the predictive distribution, together with the baseline's own uncertainty. The score is
    ``-log10`` of the upper-tail p-value; ``min_delta`` additionally demands that the share
    rises by a meaningful absolute amount before paging. The sequential evidence assumes a
    spike multiplies the odds of a negative article by ``shift`` (and lifts the share by at
    least ``min_delta``).

    A key with little history is judged against the prior (``prior_share`` worth
    ``prior_strength`` articles) plus what it has seen, with the baseline's own uncertainty
    in the predictive, so it may fire during warm-up on its per-window evidence: a market
    at 5% negative that jumps to 44% at 32 articles a window pages at once, while a first
    window of a brand-new key is judged against a wide prior.

    >>> d = BetaBinomialDetector(warmup=5, step_s=300)
    >>> for i in range(50):
    ...     _ = d.update(i * 300, 6, 20)
    >>> d.update(50 * 300, 17, 20)[-1].started
    True
    """

    name = "beta_binomial"
    judges_cold_start = True  # the predictive is the prior plus the data seen: no blind warm-up

    def __init__(
        self,
        *,
        half_life: float = 288,
        prior_share: float = 0.3,
        prior_strength: float = 10.0,
        min_delta: float = 0.03,
        min_overdispersion: float = 0.002,
        shift: float = 2.0,
        **gates: Any,
    ) -> None:
        super().__init__(**gates)
        self.decay = 0.5 ** (1.0 / _check("half_life", half_life, 1.0))
        self.prior_share = _check("prior_share", prior_share, 1e-6, 1 - 1e-6)
        self.prior_strength = _check("prior_strength", prior_strength, 1e-6)
        self.min_delta = _check("min_delta", min_delta, 0.0, 1.0)
        self.min_overdispersion = _check("min_overdispersion", min_overdispersion, 0.0, 0.5)
        self.shift = _check("shift", shift, 1.0 + 1e-9)
        self._neg = 0.0  # decayed negative articles
        self._other = 0.0  # decayed non-negative articles
        self._resid = 0.0  # decayed sum of excess squared residuals (method of moments)
        self._scale = 0.0  # decayed sum of their binomial scales

    def baseline_share(self) -> float:
        n = self._neg + self._other + self.prior_strength
        return (self._neg + self.prior_share * self.prior_strength) / n

    def _overdispersion(self) -> float:
        est = self._resid / self._scale if self._scale > 0 else 0.0
        return min(0.5, max(self.min_overdispersion, est))

    def _rho(self) -> float:
        """Intra-window correlation: over-dispersion plus the baseline's own uncertainty."""
        n_eff = self._neg + self._other + self.prior_strength
        return min(0.95, self._overdispersion() + 1.0 / (n_eff + 1.0))

    def _evaluate(self, ts: float, negative: int, total: int) -> tuple[float, float, float]:
        p = self.baseline_share()
        observed = negative / total if total else 0.0
        if total == 0 or negative == 0:
            return 0.0, observed, p
        kappa = 1.0 / self._rho() - 1.0
        score = -betabinom_sf_log10(negative, total, p * kappa, (1 - p) * kappa)
        return score, observed, p

    def _evidence(self, ts: float, negative: int, total: int) -> float:
        if total == 0:
            return 0.0
        p0 = self.baseline_share()
        odds = self.shift * p0 / (1.0 - p0)
        p1 = min(0.999, max(odds / (1.0 + odds), p0 + self.min_delta))
        llr = negative * math.log(p1 / p0) + (total - negative) * math.log((1 - p1) / (1 - p0))
        return llr / (1.0 + (total - 1) * self._rho()) / math.log(10.0)

    def _significant(self, observed: float, baseline: float) -> bool:
        return observed >= baseline + self.min_delta

    def _learn(self, ts: float, negative: int, total: int, weight: float) -> None:
        if total >= 2 and weight == 1.0:
            # While the baseline is mostly the prior, a window's residual measures the
            # prior's error, not the spread between windows: weigh it by the data's share.
            seen = self._neg + self._other
            f = seen / (seen + self.prior_strength)
            p = self.baseline_share()
            var = total * p * (1 - p)
            self._resid = self.decay * self._resid + f * ((negative - total * p) ** 2 - var)
            self._scale = self.decay * self._scale + f * var * (total - 1)
        else:
            self._resid *= self.decay
            self._scale *= self.decay
        self._neg = self.decay * self._neg + weight * negative
        self._other = self.decay * self._other + weight * (total - negative)

    def _learn_empty(self, ts: float, count: int) -> None:
        f = self.decay**count
        self._neg, self._other, self._resid, self._scale = (
            self._neg * f,
            self._other * f,
            self._resid * f,
            self._scale * f,
        )

    def _model_state(self) -> dict[str, Any]:
        return {"neg": self._neg, "other": self._other, "resid": self._resid, "scale": self._scale}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        self._neg, self._other = float(state["neg"]), float(state["other"])
        self._resid, self._scale = float(state["resid"]), float(state["scale"])
        if not all(map(math.isfinite, (self._neg, self._other, self._resid, self._scale))):
            raise ValueError("beta_binomial state holds non-finite numbers")
