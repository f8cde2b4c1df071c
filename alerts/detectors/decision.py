"""What a detector hands back per window, and the small checks every detector shares."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


class LateWindowError(ValueError):
    """A window older than one the detector has already committed."""


@dataclass(frozen=True)
class Decision:
    timestamp: float
    score: float
    observed: float
    baseline: float
    negative: int
    total: int
    firing: bool
    started: bool = False
    resolved: bool = False


def epoch(timestamp: float | datetime) -> float:
    """Seconds since the epoch; datetimes must carry a timezone."""
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("timestamp must carry a timezone")
        return timestamp.timestamp()
    return float(timestamp)


def _check(name: str, value: float, lo: float, hi: float = math.inf) -> float:
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return value
