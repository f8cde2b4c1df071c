"""Evaluation harness: built-in detectors vs the ElastAlert-style ratio rule on labelled series.

Every scenario is simulated for many days over several seeded series; every detector sees
the same series. A spike counts as detected when an alert starts during it or within
``TOLERANCE`` windows after it; any other alert start after warm-up is a false alert. Keys
with no articles send no window, as in the stream, so sparse series exercise gap handling.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from alerts.detectors import create
from alerts.simulate import SCENARIOS, Scenario, Series, generate

TOLERANCE = 2  # windows after a spike's end in which an alert still counts as detecting it

# Parameters per detector, scaled to the scenario's window: baselines adapt over a day
# (a week for the hourly sparse key); the ratio rule is ElastAlert's spike with its floors.
DETECTORS: dict[str, Callable[[Scenario], dict[str, Any]]] = {
    "beta_binomial": lambda sc: {"half_life": sc.per_day * (7 if sc.window_s >= 3600 else 1)},
    "negbinom": lambda sc: {
        "half_life": sc.per_day * (7 if sc.window_s >= 3600 else 1),
        "seasonality": "none" if sc.window_s >= 3600 else "hour_of_day",
    },
    "ratio": lambda sc: {"spike_height": 3.0, "threshold_cur": 3, "threshold_ref": 0},
}


@dataclass
class Outcome:
    detected: int = 0
    spikes: int = 0
    delays: list[int] | None = None
    false_alerts: int = 0
    days: float = 0.0

    def add(self, other: Outcome) -> None:
        self.detected += other.detected
        self.spikes += other.spikes
        self.delays = (self.delays or []) + (other.delays or [])
        self.false_alerts += other.false_alerts
        self.days += other.days

    def summary(self) -> dict[str, Any]:
        return {
            "spikes": self.spikes,
            "detected": self.detected,
            "detection_rate": self.detected / self.spikes if self.spikes else None,
            "median_delay_windows": median(self.delays) if self.delays else None,
            "false_alerts": self.false_alerts,
            "false_alerts_per_day": self.false_alerts / self.days if self.days else 0.0,
        }


def run_detector(name: str, params: dict[str, Any], series: Series, window_s: int) -> list[int]:
    """Indices of the windows where an alert starts (zero windows are never sent)."""
    det = create(name, step_s=window_s, warmup=series.warmup // 3, **params)
    starts = []
    for i in np.flatnonzero(series.total > 0):
        if det.update(float(series.timestamps[i]), int(series.negative[i]), int(series.total[i]))[
            -1
        ].started:
            starts.append(int(i))
    return starts


def score(series: Series, starts: list[int], per_day: int) -> Outcome:
    out = Outcome(delays=[], spikes=len(series.spikes))
    claimed: set[int] = set()
    for first, length in series.spikes:
        hits = [s for s in starts if first <= s < first + length + TOLERANCE]
        claimed.update(hits)
        if hits:
            out.detected += 1
            out.delays.append(hits[0] - first)  # type: ignore[union-attr]
    out.false_alerts = sum(1 for s in starts if s >= series.warmup and s not in claimed)
    out.days = (len(series.total) - series.warmup) / per_day
    return out


def _task(args: tuple[str, int]) -> tuple[str, dict[str, Outcome], dict[str, list[int]]]:
    scenario_name, seed = args
    sc = SCENARIOS[scenario_name]
    series = generate(sc, seed)
    starts = {d: run_detector(d, f(sc), series, sc.window_s) for d, f in DETECTORS.items()}
    return scenario_name, {d: score(series, s, sc.per_day) for d, s in starts.items()}, starts


def evaluate(
    scale: float = 1.0, seed: int = 0, workers: int = 2, progress: bool = True
) -> dict[str, dict[str, Any]]:
    """Run every scenario; ``scale`` shrinks series counts (tests use a small one)."""
    tasks = [
        (name, seed * 1000 + i)
        for name, sc in SCENARIOS.items()
        for i in range(max(1, round(sc.series * scale)))
    ]
    totals = {name: {d: Outcome(delays=[]) for d in DETECTORS} for name in SCENARIOS}
    examples: dict[str, dict[str, list[int]]] = {}
    with multiprocessing.get_context("fork").Pool(workers) if workers > 1 else _Serial() as pool:
        results = pool.imap_unordered(_task, tasks)
        if progress:
            from rich.progress import track

            results = track(results, total=len(tasks), description="simulating")
        for name, outcomes, starts in results:
            for d, o in outcomes.items():
                totals[name][d].add(o)
            examples.setdefault(name, starts)
    return {name: {d: o.summary() for d, o in per.items()} for name, per in totals.items()}


class _Serial:
    """A one-process stand-in for Pool (workers=1), so both paths share one loop."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap_unordered(self, fn: Callable[[Any], Any], items: list[Any]) -> Any:
        return map(fn, items)


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per scenario and detector."""
    rows = [
        "| scenario | detector | spikes | detection rate | median delay (windows) | "
        "false alerts / day |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario, per in results.items():
        for det, r in per.items():
            rate = "n/a" if r["detection_rate"] is None else f"{r['detection_rate']:.1%}"
            delay = "n/a" if r["median_delay_windows"] is None else f"{r['median_delay_windows']:g}"
            rows.append(
                f"| {scenario} | {det} | {r['spikes']} | {rate} | {delay} | "
                f"{r['false_alerts_per_day']:.3f} |"
            )
    return "\n".join(rows)


def plot(path: Path, seed: int = 0) -> None:
    """One example series per scenario: negative count, spikes shaded, alert starts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SCENARIOS), 1, figsize=(14, 3.2 * len(SCENARIOS)))
    markers = {"beta_binomial": "v", "negbinom": "^", "ratio": "x"}
    for ax, (name, sc) in zip(axes, SCENARIOS.items(), strict=True):
        series = generate(sc, seed * 1000)
        days = (series.timestamps - series.timestamps[0]) / 86_400.0
        ax.plot(days, series.negative, lw=0.6, color="tab:red", label="negative articles")
        ax.plot(days, series.total, lw=0.4, color="tab:gray", alpha=0.6, label="all articles")
        for first, length in series.spikes:
            ax.axvspan(
                days[first], days[min(first + length, len(days) - 1)], color="gold", alpha=0.5
            )
        top = max(1, int(series.total.max()))
        for k, (det, f) in enumerate(DETECTORS.items()):
            starts = run_detector(det, f(sc), series, sc.window_s)
            ax.scatter(
                days[starts],
                [top * (1.02 + 0.06 * k)] * len(starts),
                marker=markers[det],
                label=det,
            )
        ax.axvline(days[series.warmup], color="black", ls=":", lw=0.8)
        ax.set_title(f"{name}: window {sc.window_s}s, spikes shaded, alert starts marked")
        ax.set_xlabel("day")
        ax.legend(loc="upper left", fontsize=7, ncol=5)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(results: dict[str, dict[str, Any]], out_dir: Path, seed: int) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "evaluation.json", out_dir / "evaluation.png"
    payload = {
        "seed": seed,
        "tolerance_windows": TOLERANCE,
        "scenarios": {n: vars(sc) for n, sc in SCENARIOS.items()},
        "results": results,
    }
    json_path.write_text(json.dumps(payload, indent=2))
    plot(png_path, seed)
    return json_path, png_path
