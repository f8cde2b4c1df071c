"""Share or volume: the proportion test and the count test on one key, either may page."""

from __future__ import annotations

import math
from typing import Any

from alerts.detectors.base import Detector
from alerts.detectors.count import NegBinomialCountDetector
from alerts.detectors.proportion import BetaBinomialDetector

_BONFERRONI = math.log10(2.0)  # two tests per window: each p-value is doubled


class ShareOrVolumeDetector(Detector):
    """Fires when the negative *share* or the negative *count* is improbably high.

    A busy key shows a spike as a share that jumps; a sparse key (a ticker with one article
    a day) as three negative articles in an hour, which says little about the share. Both
    tests see every window; the score is the better of the two ``-log10`` p-values minus
    ``log10(2)`` (Bonferroni), so the combined false-alert rate stays that of one test.
    ``observed``/``baseline`` are those of the side that scored higher (a share or a count).

    >>> d = ShareOrVolumeDetector(warmup=5, step_s=3600, half_life=168)
    >>> for i in range(200):
    ...     _ = d.update(i * 3600, int(i % 9 == 0), 1 + int(i % 4 == 0))
    >>> last = d.update(200 * 3600, 4, 5)[-1]
    >>> last.started, last.observed, round(last.baseline, 2)
    (True, 4.0, 0.11)
    """

    name = "share_or_volume"

    def __init__(
        self,
        *,
        half_life: float = 288,
        seasonality: str = "none",
        season_half_life: float = 3.0,
        min_delta: float = 0.03,
        shift: float = 2.0,
        **gates: Any,
    ) -> None:
        super().__init__(**gates)
        self.share = BetaBinomialDetector(half_life=half_life, min_delta=min_delta, shift=shift)
        self.count = NegBinomialCountDetector(
            half_life=half_life,
            seasonality=seasonality,
            season_half_life=season_half_life,
            shift=shift,
        )

    def _evaluate(self, ts: float, negative: int, total: int) -> tuple[float, float, float]:
        s_score, s_obs, s_base = self.share._evaluate(ts, negative, total)
        if not self.share._significant(s_obs, s_base):
            s_score = 0.0
        c_score, c_obs, c_base = self.count._evaluate(ts, negative, total)
        if s_score >= c_score:
            return max(0.0, s_score - _BONFERRONI), s_obs, s_base
        return max(0.0, c_score - _BONFERRONI), c_obs, c_base

    def _evidence(self, ts: float, negative: int, total: int) -> float:
        """The stronger side's likelihood ratio: under no change both drift down, so does it."""
        share = self.share._evidence(ts, negative, total)
        return max(share, self.count._evidence(ts, negative, total))

    def _learn(self, ts: float, negative: int, total: int, weight: float) -> None:
        self.share._learn(ts, negative, total, weight)
        self.count._learn(ts, negative, total, weight)

    def _learn_empty(self, ts: float, count: int) -> None:
        self.share._learn_empty(ts, count)
        self.count._learn_empty(ts, count)

    def _model_state(self) -> dict[str, Any]:
        return {"share": self.share._model_state(), "count": self.count._model_state()}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        self.share._load_model_state(state["share"])
        self.count._load_model_state(state["count"])
