"""Replay a CSV series through one detector: ``timestamp,value`` or ``timestamp,negative,total``.

Output has one row per input row: ``timestamp,score,alert`` where ``alert`` is 1 on rows
where an alert starts. Timestamps are ISO 8601 or epoch seconds, ascending; ISO times
without a zone are read in ``tz`` (UTC unless told), so NAB's files load as they are.
Missing windows (gaps of whole steps) count as empty, the step being the smallest gap; a
row not newer than the one before it is reported and left out of the replay.
Without a detector the columns choose: ``value`` (a volume) → ``range``,
``negative,total`` (a share) → ``beta_binomial``. With labelled windows (NAB's
``combined_windows.json`` layout) the summary adds the NAB score, the windows caught and
the false starts per key-day, and a PNG shows the series with both.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from itertools import pairwise
from pathlib import Path
from typing import Any

from alerts import nab
from alerts.detectors import create

DEFAULT_DETECTOR = {"count": "range", "proportion": "beta_binomial"}


class BacktestInputError(ValueError):
    """Bad input, with the file line that is wrong."""


@dataclass
class Series:
    kind: str  # "count" (timestamp,value) or "proportion" (timestamp,negative,total)
    rows: list[tuple[str, float, float, float]]  # raw timestamp, epoch, negative, total

    def times(self) -> list[datetime]:
        return [datetime.fromtimestamp(ts, UTC) for _, ts, _, _ in self.rows]


def _epoch(text: str, line: int, tz: tzinfo) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BacktestInputError(
            f"line {line}: timestamp {text!r} is not ISO 8601 or epoch"
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=tz)).timestamp()


def _number(text: str, column: str, line: int, integer: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BacktestInputError(f"line {line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BacktestInputError(f"line {line}: {column} {text!r} is not finite")
    if integer and (value < 0 or value != int(value)):
        raise BacktestInputError(f"line {line}: {column} must be a non-negative integer")
    return int(value) if value == int(value) else value


def read_series(path: Path, tz: tzinfo = UTC) -> Series:
    """The rows of a CSV; a ``value`` series has negative = total = value (any real number)."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in reader.fieldnames or []]
        if cols == ["timestamp", "value"]:
            kind = "count"
        elif cols == ["timestamp", "negative", "total"]:
            kind = "proportion"
        else:
            raise BacktestInputError(
                f"{path}: header must be 'timestamp,value' or 'timestamp,negative,total', "
                f"got {','.join(cols)!r}"
            )
        rows: list[tuple[str, float, float, float]] = []
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            ts = _epoch(row["timestamp"], line, tz)
            if kind == "count":
                n = _number(row["value"], "value", line, integer=False)
                rows.append((row["timestamp"], ts, n, n))
            else:
                neg = _number(row["negative"], "negative", line, integer=True)
                tot = _number(row["total"], "total", line, integer=True)
                if neg > tot:
                    raise BacktestInputError(f"line {line}: negative {neg} exceeds total {tot}")
                rows.append((row["timestamp"], ts, neg, tot))
    if not rows:
        raise BacktestInputError(f"{path}: no data rows")
    return Series(kind, rows)


def run(
    rows: list[tuple[str, float, float, float]], detector: str, params: dict[str, Any]
) -> Iterator[tuple[str, float | None, int]]:
    """(timestamp, score, alert) per row; a row not newer than the one before it (NAB has
    repeated timestamps where clocks changed) is not fed to the detector: score None."""
    if "step_s" in params:  # else create() fails on two step_s, with a traceback
        raise ValueError("step_s is the input's smallest gap between rows, not a parameter")
    gaps = [b[1] - a[1] for a, b in pairwise(rows) if b[1] > a[1]]
    det = create(detector, step_s=min(gaps) if gaps else 1.0, **params)
    latest = -math.inf
    for raw, ts, neg, tot in rows:
        if ts <= latest:
            yield raw, None, 0
            continue
        latest = ts
        last = det.update(ts, neg, tot)[-1]  # type: ignore[arg-type]
        yield raw, last.score, int(last.started)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs, values read as int, float, bool or string in that order."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"parameter {pair!r} is not k=v")
        params[key.strip()] = _value(value.strip())
    return params


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def backtest(
    input_path: Path,
    output_path: Path,
    detector: str | None = None,
    params: dict[str, Any] | None = None,
    tz: tzinfo = UTC,
    labels: Path | None = None,
) -> dict[str, Any]:
    """Write the replay's CSV; returns a summary (with NAB's numbers when ``labels`` given)."""
    series = read_series(input_path, tz)
    detector = detector or DEFAULT_DETECTOR[series.kind]
    windows = None
    if labels is not None:
        windows = nab.load_windows(labels, input_path, tz)
    flags: list[int] = []
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "score", "alert"])
        skipped = 0
        for raw, score, alert in run(series.rows, detector, params or {}):
            writer.writerow([raw, "" if score is None else f"{score:.4f}", alert])
            flags.append(alert)
            skipped += score is None
    summary: dict[str, Any] = {"rows": len(series.rows), "alerts": sum(flags), "detector": detector}
    if skipped:
        summary["rows_not_newer_skipped"] = skipped
    if windows is not None:
        times = series.times()
        summary.update(nab.summary([nab.score_series(times, flags, windows)]))
        png = output_path.with_suffix(".png")
        plot(png, series, flags, windows, f"{input_path.name}: {detector}")
        summary["plot"] = str(png)
    return summary


def plot(
    path: Path,
    series: Series,
    flags: list[int],
    windows: list[tuple[datetime, datetime]],
    title: str,
) -> None:
    """The series (negative share or value), labelled windows shaded, alert starts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = series.times()
    if series.kind == "proportion":
        ys = [n / t if t else 0.0 for _, _, n, t in series.rows]
        label = "negative share"
    else:
        ys = [n for _, _, n, _ in series.rows]
        label = "value"
    fig, ax = plt.subplots(figsize=(14, 3.6))
    ax.plot(times, ys, lw=0.5, color="tab:blue", label=label)
    for k, (a, b) in enumerate(windows):
        ax.axvspan(a, b, color="gold", alpha=0.45, label="labelled window" if k == 0 else None)
    starts = [t for t, f in zip(times, flags, strict=True) if f]
    top = max(ys) if ys else 1.0
    ax.scatter(starts, [top * 1.03] * len(starts), marker="v", color="tab:red", label="alert start")
    ax.set_title(title)
    ax.set_ylabel(label)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
