"""Evaluation harness: the statistical detectors vs the ElastAlert-style ratio rule.

Every scenario is simulated over several seeded series; every detector sees the same series.
A spike is detected when an alert *starts* during it or within ``TOLERANCE`` windows after
it (delay counted in windows from the spike's first window); any other alert start after
warm-up is false, and false alerts are counted per day of spike-free time. Keys with no
articles send no window, as in the stream, so sparse series exercise gap handling.

Each detector is reported twice: at its default threshold, and at a *matched* threshold —
the one on ``GRID`` that detects most while its false alerts per spike-free day stay at or
below the ratio rule's on the same series. Those calibration series use seeds the reported
run never sees (``seed * 1000 + CALIBRATION_OFFSET + i`` vs ``seed * 1000 + i``), so the
matched point is not tuned in-sample. Calibration is cached in a JSON file keyed by a
fingerprint of the detector code, the scenarios and the parameters, and redone whenever any
of them changes.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

import alerts
from alerts.detectors import create
from tools.alerts.simulate import SCENARIOS, Scenario, Series, generate

TOLERANCE = 2  # windows after a spike's end in which an alert still counts as detecting it
YARDSTICK = "ratio"
GRID = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0)  # thresholds tried for matching
CALIBRATION_OFFSET = 500  # calibration seeds; evaluation uses fewer than this many series
CALIBRATION = Path(__file__).with_name("calibration.json")  # matched thresholds for seed 0


def _half_life(sc: Scenario) -> int:
    """Baselines adapt over a day, over a week for hourly (sparse) keys."""
    return sc.per_day * (7 if sc.window_s >= 3600 else 1)


def _count_params(sc: Scenario) -> dict[str, Any]:
    """The daily cycle is learned per hour; on sparse keys each hour's factor needs a week."""
    season = {"season_half_life": 7.0} if sc.window_s >= 3600 else {}
    return {"half_life": _half_life(sc), "seasonality": "hour_of_day", **season}


# Parameters per detector, scaled to the scenario's window. The ratio rule is ElastAlert's
# spike with its floors: 3x the previous window, at least 3 negatives now.
DETECTORS: dict[str, Callable[[Scenario], dict[str, Any]]] = {
    "beta_binomial": lambda sc: {"half_life": _half_life(sc)},
    "negbinom": lambda sc: _count_params(sc),
    "share_or_volume": lambda sc: _count_params(sc),
    "range": lambda sc: {},  # its horizon and scales follow from its budget and step
    YARDSTICK: lambda sc: {"spike_height": 3.0, "threshold_cur": 3, "threshold_ref": 0},
}


@dataclass
class Outcome:
    spikes: int = 0
    detected: int = 0
    delays: list[int] = field(default_factory=list)
    false_alerts: int = 0
    days: float = 0.0

    def add(self, other: Outcome) -> None:
        self.spikes += other.spikes
        self.detected += other.detected
        self.delays += other.delays
        self.false_alerts += other.false_alerts
        self.days += other.days

    @property
    def false_per_day(self) -> float:
        return self.false_alerts / self.days if self.days else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "spikes": self.spikes,
            "detected": self.detected,
            "detection_rate": self.detected / self.spikes if self.spikes else None,
            "within_1_window_rate": (
                sum(d <= 1 for d in self.delays) / self.spikes if self.spikes else None
            ),
            "median_delay_windows": median(self.delays) if self.delays else None,
            "false_alerts": self.false_alerts,
            "spike_free_days": round(self.days, 2),
            "false_alerts_per_day": self.false_per_day,
        }


def run_detector(name: str, params: dict[str, Any], series: Series, window_s: int) -> list[int]:
    """Indices of the windows where an alert starts (windows without articles are not sent)."""
    det = create(name, step_s=window_s, warmup=series.warmup // 3, **params)
    starts = []
    for i in np.flatnonzero(series.total > 0):
        ts, neg, tot = float(series.timestamps[i]), int(series.negative[i]), int(series.total[i])
        if det.update(ts, neg, tot)[-1].started:
            starts.append(int(i))
    return starts


def score(series: Series, starts: list[int], per_day: int) -> Outcome:
    """Detections, delays and false alerts; spike windows (and the grace) are not 'spike-free'."""
    out = Outcome(spikes=len(series.spikes))
    near_spike = np.zeros(len(series.total), dtype=bool)
    for first, length in series.spikes:
        near_spike[first : first + length + TOLERANCE] = True
        hits = [s for s in starts if first <= s < first + length + TOLERANCE]
        if hits:
            out.detected += 1
            out.delays.append(hits[0] - first)
    out.false_alerts = sum(1 for s in starts if s >= series.warmup and not near_spike[s])
    out.days = float(np.count_nonzero(~near_spike[series.warmup :])) / per_day
    return out


def _seeds(sc: Scenario, scale: float, seed: int, calibration: bool) -> list[int]:
    count = max(1, round(sc.series * scale))
    if count > CALIBRATION_OFFSET:
        raise ValueError(f"at most {CALIBRATION_OFFSET} series per scenario, got {count}")
    first = seed * 1000 + (CALIBRATION_OFFSET if calibration else 0)
    return list(range(first, first + count))


def _with_threshold(detector: str, sc: Scenario, threshold: float | None) -> dict[str, Any]:
    params = DETECTORS[detector](sc)
    return params if threshold is None else {**params, "threshold": threshold}


# -- calibration -----------------------------------------------------------------------
def _calibration_task(
    args: tuple[str, int, tuple[float, ...]],
) -> tuple[str, dict[str, dict[float | None, Outcome]]]:
    """Every detector at every grid threshold on one calibration series."""
    name, seed, grid_ = args
    sc = SCENARIOS[name]
    series = generate(sc, seed)
    out: dict[str, dict[float | None, Outcome]] = {}
    for det in DETECTORS:
        grid: Iterable[float | None] = (None,) if det == YARDSTICK else grid_
        out[det] = {
            t: score(
                series,
                run_detector(det, _with_threshold(det, sc, t), series, sc.window_s),
                sc.per_day,
            )
            for t in grid
        }
    return name, out


def _choose(per: dict[float, Outcome], target: float) -> float | None:
    """The threshold detecting most (then most within a window, then the highest) among
    those whose false alerts per spike-free day stay within ``target``; none if none do.
    Without spikes to detect (the drift scenario) it is the lowest such threshold: the most
    sensitive setting the ratio rule's false-alert budget allows."""
    ok = [t for t, o in per.items() if o.false_per_day <= target]
    if not ok:
        return None
    if not any(o.spikes for o in per.values()):
        return min(ok)

    def merit(t: float) -> tuple[int, int, float]:
        return per[t].detected, sum(d <= 1 for d in per[t].delays), t

    return max(ok, key=merit)


def fingerprint(scale: float, seed: int, names: list[str], grid: tuple[float, ...]) -> str:
    """What the calibration depends on: detector code, scenarios, parameters, seeds."""
    runtime = Path(alerts.__file__).parent
    h = hashlib.sha256()
    # The order these files were hashed in when all three lived in alerts/: cached
    # calibrations stay valid across the move to tools/.
    simulator = Path(__file__).with_name("simulate.py")
    for path in [*sorted(runtime.glob("detectors/*.py")), simulator, runtime / "stats.py"]:
        h.update(path.read_bytes())
    setup = {
        "scenarios": {n: vars(SCENARIOS[n]) for n in names},
        "params": {d: {n: f(SCENARIOS[n]) for n in names} for d, f in DETECTORS.items()},
        "grid": grid,
        "tolerance": TOLERANCE,
        "scale": scale,
        "seed": seed,
    }
    h.update(json.dumps(setup, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def calibrate(
    scale: float = 1.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    scenarios: list[str] | None = None,
    grid: tuple[float, ...] = GRID,
) -> dict[str, Any]:
    """Matched thresholds, chosen on the calibration seeds' series: per scenario and
    detector, the grid threshold that detects most while its false alerts per spike-free
    day stay within the ratio rule's (None: no threshold on the grid does)."""
    names = scenarios or list(SCENARIOS)
    tasks = [(n, s, grid) for n in names for s in _seeds(SCENARIOS[n], scale, seed, True)]
    totals: dict[str, dict[str, dict[float | None, Outcome]]] = {
        n: {d: {} for d in DETECTORS} for n in names
    }
    for name, outcomes in _map(_calibration_task, tasks, workers, progress, "calibrating"):
        for det, per in outcomes.items():
            for t, o in per.items():
                totals[name][det].setdefault(t, Outcome()).add(o)
    thresholds: dict[str, dict[str, float | None]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    for name in names:
        target = totals[name][YARDSTICK][None].false_per_day
        summaries[name] = {YARDSTICK: totals[name][YARDSTICK][None].summary()}
        thresholds[name] = {}
        for det in DETECTORS:
            if det != YARDSTICK:
                per = {t: o for t, o in totals[name][det].items() if t is not None}
                summaries[name][det] = {str(t): o.summary() for t, o in per.items()}
                thresholds[name][det] = _choose(per, target)
    return {
        "fingerprint": fingerprint(scale, seed, names, grid),
        "seeds": {n: _seeds(SCENARIOS[n], scale, seed, True) for n in names},
        "outcomes": summaries,
        "thresholds": thresholds,
    }


def load_or_calibrate(
    path: Path | None,
    scale: float,
    seed: int,
    workers: int,
    progress: bool,
    scenarios: list[str],
    grid: tuple[float, ...],
) -> dict[str, Any]:
    """The cached calibration if it matches the current code and setup, else a fresh one."""
    expected = fingerprint(scale, seed, scenarios, grid)
    if path is not None and path.exists():
        cached = json.loads(path.read_text())
        if cached.get("fingerprint") == expected:
            return cached
    fresh = calibrate(scale, seed, workers, progress, scenarios, grid)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fresh, indent=1))
    return fresh


# -- evaluation ------------------------------------------------------------------------
def _evaluation_task(
    args: tuple[str, int, dict[str, float | None]],
) -> tuple[str, dict[str, Outcome], dict[str, Outcome]]:
    name, seed, matched = args
    sc = SCENARIOS[name]
    series = generate(sc, seed)
    default, at_match = {}, {}
    for det in DETECTORS:
        starts = run_detector(det, _with_threshold(det, sc, None), series, sc.window_s)
        default[det] = score(series, starts, sc.per_day)
        if matched.get(det) is not None:
            starts = run_detector(det, _with_threshold(det, sc, matched[det]), series, sc.window_s)
            at_match[det] = score(series, starts, sc.per_day)
    return name, default, at_match


def evaluate(
    scale: float = 1.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    calibration: Path | None = None,
    scenarios: list[str] | None = None,
    grid: tuple[float, ...] = GRID,
) -> dict[str, Any]:
    """Every scenario at both operating points; ``scale`` shrinks series counts (tests).

    ``calibration`` caches the matched thresholds (recomputed when stale); none: computed.
    """
    names = scenarios or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenario(s) {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    cal = load_or_calibrate(calibration, scale, seed, workers, progress, names, grid)
    tasks = [
        (n, s, cal["thresholds"][n])
        for n in names
        for s in _seeds(SCENARIOS[n], scale, seed, False)
    ]
    default = {n: {d: Outcome() for d in DETECTORS} for n in names}
    matched = {n: {d: Outcome() for d in DETECTORS if d != YARDSTICK} for n in names}
    for name, d_out, m_out in _map(_evaluation_task, tasks, workers, progress, "evaluating"):
        for det, o in d_out.items():
            default[name][det].add(o)
        for det, o in m_out.items():
            matched[name][det].add(o)
    results: dict[str, Any] = {}
    for name in names:
        results[name] = {}
        for det in DETECTORS:
            entry = {"default": default[name][det].summary()}
            if det != YARDSTICK:
                threshold = cal["thresholds"][name][det]
                entry["matched_threshold"] = threshold
                entry["matched"] = None if threshold is None else matched[name][det].summary()
            results[name][det] = entry
    return {
        "seeds": {n: _seeds(SCENARIOS[n], scale, seed, False) for n in names},
        "calibration": cal,
        "results": results,
    }


def _map(
    fn: Callable[[Any], Any], tasks: list[Any], workers: int, progress: bool, label: str
) -> Iterator[Any]:
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from _progress(pool.imap_unordered(fn, tasks), len(tasks), progress, label)
    else:
        yield from _progress(map(fn, tasks), len(tasks), progress, label)


def _progress(items: Iterable[Any], total: int, show: bool, label: str) -> Iterable[Any]:
    if not show:
        return items
    from rich.progress import track

    return track(items, total=total, description=label)


def _row(scenario: str, det: str, point: str, r: dict[str, Any]) -> str:
    rate = "n/a" if r["detection_rate"] is None else f"{r['detection_rate']:.1%}"
    soon = "n/a" if r["within_1_window_rate"] is None else f"{r['within_1_window_rate']:.1%}"
    delay = "n/a" if r["median_delay_windows"] is None else f"{r['median_delay_windows']:g}"
    return (
        f"| {scenario} | {det} | {point} | {r['spikes']} | {rate} | {soon} | {delay} | "
        f"{r['false_alerts_per_day']:.3f} |"
    )


def table(report: dict[str, Any]) -> str:
    """Markdown table: per scenario the ratio rule, then each detector at both points."""
    rows = [
        "| scenario | detector | operating point | spikes | detected | detected within "
        "1 window | median delay (windows) | false alerts / spike-free day |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for scenario, per in report["results"].items():
        rows.append(_row(scenario, YARDSTICK, "ElastAlert spike", per[YARDSTICK]["default"]))
        for det, entry in per.items():
            if det == YARDSTICK:
                continue
            point = f"default ({create(det, step_s=300).threshold:g})"
            rows.append(_row(scenario, det, point, entry["default"]))
            if entry["matched"] is None:
                rows.append(f"| {scenario} | {det} | matched: none on the grid | | | | | |")
            else:
                point = f"matched ({entry['matched_threshold']:g})"
                rows.append(_row(scenario, det, point, entry["matched"]))
    return "\n".join(rows)


def plot(path: Path, seed: int = 0) -> None:
    """One example series per scenario: negative count, spikes shaded, alert starts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SCENARIOS), 1, figsize=(14, 3.2 * len(SCENARIOS)))
    markers = dict(zip(DETECTORS, "v^osx", strict=True))
    for ax, (name, sc) in zip(axes, SCENARIOS.items(), strict=True):
        series = generate(sc, _seeds(sc, 1.0, seed, False)[0])
        days = (series.timestamps - series.timestamps[0]) / 86_400.0
        ax.plot(days, series.negative, lw=0.6, color="tab:red", label="negative articles")
        ax.plot(days, series.total, lw=0.4, color="tab:gray", alpha=0.6, label="all articles")
        for first, length in series.spikes:
            ax.axvspan(
                days[first], days[min(first + length, len(days) - 1)], color="gold", alpha=0.5
            )
        top = max(1, int(series.total.max()))
        for k, det in enumerate(DETECTORS):
            starts = run_detector(det, DETECTORS[det](sc), series, sc.window_s)
            y = [top * (1.02 + 0.06 * k)] * len(starts)
            ax.scatter(days[starts], y, marker=markers[det], label=f"{det} (default)")
        ax.axvline(days[series.warmup], color="black", ls=":", lw=0.8)
        ax.set_title(f"{name}: window {sc.window_s}s, spikes shaded, alert starts marked")
        ax.set_xlabel("day")
        ax.legend(loc="upper left", fontsize=7, ncol=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: Path, seed: int) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "evaluation.json", out_dir / "evaluation.png"
    payload = {
        "seed": seed,
        "tolerance_windows": TOLERANCE,
        "scenarios": {n: vars(sc) for n, sc in SCENARIOS.items()},
        **report,
    }
    json_path.write_text(json.dumps(payload, indent=2))
    plot(png_path, seed)
    return json_path, png_path
