"""NAB-style scoring of alert starts against labelled anomaly windows (standard profile).

The Numenta Anomaly Benchmark's scoring rule (Lavin & Ahmad 2015, MIT), written from its
description: each labelled window counts once — its earliest alert inside earns up to
``A_tp`` (a sigmoid of how early in the window it came: the left edge ≈ 1, the right
edge 0), no alert inside costs ``A_fn``; every alert outside a window costs ``A_fp``
times a sigmoid of its distance past the previous window (just after a window it costs
little, far from it the full ``A_fp``). The first 15% of a series (at most 750 rows) is a
probation period where nothing counts. The normalised score puts "no alerts" at 0 and
"an alert at the start of every window" at 100, summed over series.

>>> from datetime import datetime, timedelta
>>> ts = [datetime(2026, 1, 1) + timedelta(minutes=5 * i) for i in range(1000)]
>>> win = [(ts[500], ts[599])]
>>> flags = [0] * 1000
>>> flags[510] = 1
>>> s = score_series(ts, flags, win)
>>> round(s.raw, 3), s.detected, s.false_starts
(0.991, 1, 0)
>>> flags[900] = 1
>>> round(score_series(ts, flags, win).raw, 3)
0.881
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

A_TP, A_FP, A_FN = 1.0, 0.11, 1.0  # NAB's standard profile
PROBATION = 0.15
MAX_PROBATION_ROWS = 750  # 15% of 5000 rows


def _scaled_sigmoid(position: float) -> float:
    """+0.987 at a window's left edge (-1), 0 at its right edge, toward -1 past it."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


@dataclass(frozen=True)
class SeriesScore:
    raw: float  # NAB score of the alert starts
    null: float  # score of no alerts at all
    perfect: float  # score of one alert at the start of every window
    windows: int
    detected: int  # windows with an alert start inside
    false_starts: int  # alert starts outside every window (probation included)
    days: float


def score_series(
    timestamps: Sequence[datetime], flags: Sequence[int | float], windows: Sequence[tuple]
) -> SeriesScore:
    """NAB score of ``flags`` (1 where an alert starts) given labelled ``(start, end)`` windows."""
    n = len(timestamps)
    spans = []
    for start, end in sorted(windows):
        lo, hi = bisect_left(timestamps, start), bisect_right(timestamps, end) - 1
        if lo <= hi:
            spans.append((lo, hi))
    probation = min(math.floor(PROBATION * n), PROBATION * 5000)
    flagged = [i for i, f in enumerate(flags) if f >= 0.5]
    max_tp = _scaled_sigmoid(-1.0)

    def raw_of(rows: list[int]) -> float:
        best: dict[int, float] = {w: -A_FN for w, (_, hi) in enumerate(spans) if hi >= probation}
        fp = 0.0
        for i in rows:
            if i < probation:
                continue
            w = next((w for w, (lo, hi) in enumerate(spans) if lo <= i <= hi), None)
            if w is not None:
                lo, hi = spans[w]
                tp = _scaled_sigmoid(-(hi - i + 1) / (hi - lo + 1)) * A_TP / max_tp
                best[w] = max(best[w], tp)
                continue
            before = [(lo, hi) for lo, hi in spans if hi < i]
            if not before:
                fp -= A_FP
            else:
                lo, hi = before[-1]
                width = hi - lo + 1
                fp += A_FP * _scaled_sigmoid(abs(hi - i) / max(width - 1, 1))
        return sum(best.values()) + fp

    inside = [any(lo <= i <= hi for lo, hi in spans) for i in flagged]
    return SeriesScore(
        raw=raw_of(flagged),
        null=raw_of([]),
        perfect=raw_of([lo for lo, _ in spans]),
        windows=len(spans),
        detected=sum(any(lo <= i <= hi for i in flagged) for lo, hi in spans),
        false_starts=inside.count(False),
        days=(timestamps[-1] - timestamps[0]).total_seconds() / 86_400.0 if n > 1 else 0.0,
    )


def normalised(raw: float, null: float, perfect: float) -> float:
    """100 × (raw − null) / (perfect − null): no alerts 0, a perfect detector 100."""
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0


def summary(scores: Sequence[SeriesScore]) -> dict[str, float | str]:
    """The numbers a reader compares: normalised score, windows caught, false starts a day."""
    days = sum(s.days for s in scores)
    return {
        "nab_normalised": round(
            normalised(
                sum(s.raw for s in scores),
                sum(s.null for s in scores),
                sum(s.perfect for s in scores),
            ),
            1,
        ),
        "windows_detected": f"{sum(s.detected for s in scores)}/{sum(s.windows for s in scores)}",
        "false_starts_per_key_day": round(sum(s.false_starts for s in scores) / days, 3)
        if days
        else 0.0,
    }


def parse_time(text: str) -> datetime:
    """NAB's label timestamps ('2015-03-05 03:22:53.000000'), naive UTC."""
    return datetime.fromisoformat(text.strip().split(".")[0])


def load_windows(labels: Path, series: Path, tz: tzinfo = UTC) -> list[tuple[datetime, datetime]]:
    """The windows of ``series`` in a NAB ``combined_windows.json`` (keyed 'category/file.csv'),
    their naive times read in ``tz`` like the series' own."""
    try:
        table = json.loads(labels.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{labels}: not a readable JSON labels file ({exc})") from None
    if not isinstance(table, dict):
        raise ValueError(f"{labels}: expected an object mapping series to windows")
    matches = [k for k in table if k == series.name or k.endswith("/" + series.name)]
    if len(matches) != 1:
        found = "no" if not matches else f"{len(matches)} ambiguous"
        raise ValueError(f"{labels}: {found} windows for {series.name!r}")
    try:
        return [
            (parse_time(a).replace(tzinfo=tz), parse_time(b).replace(tzinfo=tz))
            for a, b in table[matches[0]]
        ]
    except (TypeError, ValueError):
        raise ValueError(
            f"{labels}: windows of {matches[0]!r} are not [start, end] pairs"
        ) from None
