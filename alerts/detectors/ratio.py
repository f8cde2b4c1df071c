"""ElastAlert's ``spike`` rule, kept for teams that want its semantics (and as the yardstick)."""

from __future__ import annotations

from collections import deque
from typing import Any

from alerts.detectors.base import Detector, _check

_NO_REFERENCE = 1e6  # the score of "something vs nothing": ElastAlert fires on it


class RatioDetector(Detector):
    """Fires when the negative count is ``spike_height`` × that of the reference window(s).

    Floors as in ElastAlert: ``threshold_cur`` negatives now (the gate ``min_negative``) and
    ``threshold_ref`` in the reference; with ``threshold_ref=0`` a quiet key fires on any
    burst, which is the behaviour this rule is known for. The score is the ratio itself.

    >>> d = RatioDetector(warmup=1, step_s=300)
    >>> _ = d.update(0, 2, 10)
    >>> d.update(300, 6, 12)[-1].started
    True
    """

    name = "ratio"

    def __init__(
        self,
        *,
        spike_height: float = 3.0,
        threshold_cur: int = 3,
        threshold_ref: int = 0,
        ref_windows: int = 1,
        **gates: Any,
    ) -> None:
        gates.setdefault("min_negative", int(threshold_cur))
        gates.setdefault("threshold", _check("spike_height", spike_height, 1.0))
        gates.setdefault("resolve_threshold", spike_height / 2)
        gates.setdefault("accumulate", False)  # ElastAlert judges each window alone
        super().__init__(**gates)
        self.threshold_ref = int(_check("threshold_ref", threshold_ref, 0))
        self._ref: deque[int] = deque(maxlen=int(_check("ref_windows", ref_windows, 1)))

    def _reference(self) -> float:
        return sum(self._ref) / len(self._ref) if self._ref else 0.0

    def _evaluate(self, ts: float, negative: int, total: int) -> tuple[float, float, float]:
        ref = self._reference()
        nothing = _NO_REFERENCE if negative > 0 else 0.0
        score = negative / ref if ref > 0 else nothing
        return score, float(negative), ref

    def eligible(self, negative: int, total: int) -> bool:
        return super().eligible(negative, total) and self._reference() >= self.threshold_ref

    def _learn(self, ts: float, negative: int, total: int, weight: float) -> None:
        self._ref.append(negative)

    def _learn_empty(self, ts: float, count: int) -> None:
        self._ref.extend([0] * min(count, self._ref.maxlen or 1))

    def _model_state(self) -> dict[str, Any]:
        return {"ref": list(self._ref)}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        self._ref.clear()
        self._ref.extend(int(x) for x in state["ref"])
