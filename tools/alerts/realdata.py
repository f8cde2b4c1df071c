"""Every detector at its defaults on real labelled series (NAB layout), beside published ones.

The simulator ranks detectors on data we made; this runs them on the field's data: a
folder laid out as NAB's (``data/<category>/*.csv``, ``labels/combined_windows.json``,
optionally ``results/<detector>/<detector>_standard_scores.csv`` with the published
detectors' per-file scores), each series replayed as ``finpulse alerts backtest`` would
(default parameters, step = the smallest gap), scored with NAB's standard profile.
Published scores are normalised with the same files' "no alerts" and "perfect" scores, so
both tables read on one scale.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from alerts import nab
from alerts.backtest import read_series, run
from alerts.detectors import DETECTORS


def _series(root: Path, category: str) -> list[tuple[Path, list]]:
    labels = root / "labels" / "combined_windows.json"
    files = sorted((root / "data" / category).glob("*.csv"))
    if not files:
        raise ValueError(f"{root}: no series under data/{category}/ (NAB layout expected)")
    if not labels.exists():
        raise ValueError(f"{root}: no labels/combined_windows.json")
    return [(p, nab.load_windows(labels, p)) for p in files]


def _published(root: Path, category: str, names: set[str], null: float, perfect: float) -> dict:
    out: dict[str, float] = {}
    results = root / "results"
    for d in sorted(results.iterdir()) if results.is_dir() else []:
        path = d / f"{d.name}_standard_scores.csv"
        if not path.exists():
            continue
        with path.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("File") in names]
        if len(rows) == len(names):
            raw = sum(float(r["Score"]) for r in rows)
            out[d.name] = round(nab.normalised(raw, null, perfect), 1)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def evaluate_real(root: Path, category: str = "realTweets") -> dict[str, Any]:
    """Per detector (defaults): NAB normalised, windows caught, false starts per key-day."""
    series = _series(root, category)
    loaded = [(s, s.times(), windows) for s, windows in ((read_series(p), w) for p, w in series)]
    detectors: dict[str, Any] = {}
    null = perfect = 0.0
    for name in DETECTORS:
        scores = []
        try:
            for s, times, windows in loaded:
                flags = [alert for _, _, alert in run(s.rows, name, {})]
                scores.append(nab.score_series(times, flags, windows))
        except ValueError as exc:
            detectors[name] = {"error": str(exc)}
            continue
        detectors[name] = nab.summary(scores)
        null, perfect = sum(s.null for s in scores), sum(s.perfect for s in scores)
    names = {f"{category}/{p.name}" for p, _ in series}
    return {
        "folder": str(root),
        "category": category,
        "series": [p.name for p, _ in series],
        "detectors": detectors,
        "published": _published(root, category, names, null, perfect),
    }


def real_table(report: dict[str, Any]) -> str:
    """Markdown: our detectors at their defaults, then the published detectors' scores."""
    rows = [
        f"{report['category']} ({len(report['series'])} series)",
        "",
        "| detector | NAB normalised | windows detected | false starts / key-day |",
        "|---|---:|---:|---:|",
    ]
    ours = report["detectors"]
    for name, r in sorted(ours.items(), key=lambda kv: -kv[1].get("nab_normalised", -1e9)):
        if "error" in r:
            rows.append(f"| {name} (default) | fails: {r['error']} | | |")
        else:
            rows.append(
                f"| {name} (default) | {r['nab_normalised']:.1f} | {r['windows_detected']} | "
                f"{r['false_starts_per_key_day']:.3f} |"
            )
    for name, value in report["published"].items():
        rows.append(f"| {name} (published) | {value:.1f} | | |")
    return "\n".join(rows)
