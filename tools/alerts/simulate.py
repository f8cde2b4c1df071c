"""Realistic synthetic rate series with labelled spikes, for evaluating detectors.

Volumes follow daily and weekly cycles (quiet nights and weekends, a busy Monday open),
counts are over-dispersed (Gamma-Poisson) and the negative share wanders from window to
window (Beta noise), because real news clusters. Spikes add negative articles of a known
size for a known number of windows; drift scenarios move the share and the volume slowly
and contain no spike at all, so every alert there is a false one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY = 86_400.0
EPOCH = 1_767_571_200.0  # 2026-01-05 00:00 UTC, a Monday


@dataclass(frozen=True)
class Scenario:
    name: str
    window_s: int
    per_hour: float  # mean articles per hour at the weekly average
    share: float  # mean negative share
    days: int
    series: int
    spike_every_days: float  # mean gap between spikes; 0 = no spikes
    spike_sizes: tuple[float, ...]  # relative: extra negatives = size x expected negatives
    spike_windows: tuple[int, ...]
    spike_floor: float = 0.0  # minimum extra negatives per spike window (sparse keys)
    share_drift: float = 0.0  # total change of the share over the series
    volume_drift: float = 1.0  # volume multiplier reached at the end
    cycles: bool = True
    warmup_days: float = 3.0

    @property
    def per_day(self) -> int:
        return int(DAY // self.window_s)


@dataclass
class Series:
    timestamps: np.ndarray
    negative: np.ndarray
    total: np.ndarray
    spikes: list[tuple[int, int]]  # (first window, number of windows)
    warmup: int  # windows before which nothing is scored


SCENARIOS: dict[str, Scenario] = {
    "global-busy": Scenario("global-busy", 300, 300, 0.30, 28, 6, 2.0, (0.5, 1.0, 2.0), (3, 6, 12)),
    "topic": Scenario("topic", 900, 30, 0.30, 28, 8, 2.0, (1.0, 2.0, 4.0), (2, 4, 8)),
    "ticker-sparse": Scenario(
        "ticker-sparse", 3600, 4 / 24, 0.35, 56, 20, 5.0, (0.0,), (1, 2, 3), spike_floor=3.0
    ),
    "drift-no-spike": Scenario(
        "drift-no-spike", 300, 300, 0.25, 28, 6, 0.0, (), (), share_drift=0.2, volume_drift=2.0
    ),
}


def _cycle(ts: np.ndarray) -> np.ndarray:
    """Volume multiplier: a day curve peaking mid-session, weekends at 40%, Monday open at 160%."""
    hour = (ts % DAY) / 3600.0
    weekday = ((ts - EPOCH) // DAY).astype(int) % 7
    daily = 0.25 + 1.5 * np.exp(-(((hour - 14.0) / 4.0) ** 2))
    weekly = np.where(weekday >= 5, 0.4, 1.0)
    monday_open = np.where((weekday == 0) & (hour >= 13) & (hour < 16), 1.6, 1.0)
    curve = daily * weekly * monday_open
    return curve / curve.mean()


def generate(scenario: Scenario, seed: int) -> Series:
    rng = np.random.default_rng(seed)
    n = scenario.days * scenario.per_day
    ts = EPOCH + np.arange(n) * scenario.window_s
    progress = np.arange(n) / n
    mean_total = scenario.per_hour * scenario.window_s / 3600.0
    volume = mean_total * (1.0 + (scenario.volume_drift - 1.0) * progress)
    if scenario.cycles:
        volume = volume * _cycle(ts)
    total = rng.poisson(rng.gamma(20.0, volume / 20.0))
    share = np.clip(scenario.share + scenario.share_drift * progress, 0.01, 0.99)
    kappa = 150.0
    share_w = rng.beta(share * kappa, (1 - share) * kappa)
    negative = rng.binomial(total, share_w)
    warmup = int(scenario.warmup_days * scenario.per_day)
    spikes: list[tuple[int, int]] = []
    if scenario.spike_every_days > 0:
        gap = scenario.spike_every_days * scenario.per_day
        pos = warmup + int(rng.uniform(0.2, 1.0) * gap)
        while pos < n - max(scenario.spike_windows) - 2:
            length = int(rng.choice(scenario.spike_windows))
            size = float(rng.choice(scenario.spike_sizes))
            for i in range(pos, pos + length):
                expected = volume[i] * share[i]
                extra = rng.poisson(max(size * expected, scenario.spike_floor))
                negative[i] += extra
                total[i] += extra
            spikes.append((pos, length))
            pos += length + int(rng.uniform(0.5, 1.5) * gap)
    return Series(ts, negative.astype(int), total.astype(int), spikes, warmup)
