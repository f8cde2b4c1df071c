"""The alert detector's baseline and threshold for each chart window, by replaying the rule.

The engine keeps only its detector's *current* state, but an analyst reading a chart wants
to see where the baseline stood at every window and how negative a window had to be to
page. Replaying the rule's own detector (same class, same parameters) over the stored
rates gives exactly that, with the detector's public API only: the baseline is each
decision's ``baseline``, and the threshold is the smallest negative share that would score
at or above the detector's threshold for that window's volume.

>>> from datetime import UTC, datetime
>>> from alerts.config import RuleConfig
>>> from stream.sinks.base import RatePoint
>>> rule = RuleConfig(name="r", scope="global", params={"warmup": 3})
>>> t = lambda i: datetime.fromtimestamp(i * 300, UTC)
>>> pts = [RatePoint(t(i), 20, 4) for i in range(10)]
>>> bands = detector_bands(rule, pts)
>>> round(bands[-1].baseline, 2), 0.2 < bands[-1].threshold < bands[0].threshold  # cold: wide
(0.21, True)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from alerts.config import RuleConfig
from alerts.detectors import Detector, create
from stream.sinks.base import RatePoint

# Detectors whose baseline is a negative *share*; count detectors have nothing to draw
# on a share axis.
SHARE_DETECTORS = frozenset({"beta_binomial", "ratio"})


@dataclass(frozen=True)
class Band:
    baseline: float | None
    threshold: float | None  # negative share that would fire at this window's volume


def detector_bands(rule: RuleConfig, points: Sequence[RatePoint]) -> list[Band]:
    """One band per point, replaying ``rule``'s detector over ``points`` (oldest first)."""
    if rule.detector not in SHARE_DETECTORS:
        return [Band(None, None) for _ in points]
    det = create(rule.detector, step_s=rule.step, **rule.params)
    bands = []
    for p in points:
        warm = det.ready  # after warm-up, or at once where the prior judges a cold key
        threshold = _threshold_share(det, p) if warm and p.total else None
        decision = det.update(p.start, p.negative, p.total)[-1]
        bands.append(Band(decision.baseline, threshold))
    return bands


def _threshold_share(det: Detector, p: RatePoint) -> float | None:
    """Smallest k/n that would fire for ``p.total`` articles (None: no count would)."""

    def fires(k: int) -> bool:
        d = copy.deepcopy(det).update(p.start, k, p.total)[-1]
        return det.fires(d.score, d.observed, d.baseline, k, p.total)  # the engine's decision

    if not fires(p.total):
        return None
    lo, hi = 0, p.total  # fires(hi) holds; find the least such k
    while lo < hi:
        mid = (lo + hi) // 2
        if fires(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo / p.total
