"""Replay a CSV series through one detector: ``timestamp,value`` or ``timestamp,negative,total``.

Output has one row per input row: ``timestamp,score,alert`` where ``alert`` is 1 on rows
where an alert starts. Timestamps are ISO 8601 with a zone or epoch seconds, ascending;
missing windows (gaps of whole steps) count as empty, the step being the smallest gap.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from alerts.detectors import create


class BacktestInputError(ValueError):
    """Bad input, with the file line that is wrong."""


def _epoch(text: str, line: int) -> float:
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
    if dt.tzinfo is None:
        raise BacktestInputError(f"line {line}: timestamp {text!r} has no timezone")
    return dt.timestamp()


def _count(text: str, column: str, line: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise BacktestInputError(f"line {line}: {column} {text!r} is not a number") from None
    if value < 0 or not math.isfinite(value) or value != int(value):
        raise BacktestInputError(f"line {line}: {column} must be a non-negative integer")
    return int(value)


def read_series(path: Path) -> list[tuple[str, float, int, int]]:
    """(raw timestamp, epoch, negative, total) per row; a count series has negative = total."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in reader.fieldnames or []]
        if cols[:2] == ["timestamp", "value"] and len(cols) == 2:
            kind = "count"
        elif cols == ["timestamp", "negative", "total"]:
            kind = "proportion"
        else:
            raise BacktestInputError(
                f"{path}: header must be 'timestamp,value' or 'timestamp,negative,total', "
                f"got {','.join(cols)!r}"
            )
        rows: list[tuple[str, float, int, int]] = []
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            ts = _epoch(row["timestamp"], line)
            if rows and ts <= rows[-1][1]:
                raise BacktestInputError(f"line {line}: timestamps must be strictly ascending")
            if kind == "count":
                n = _count(row["value"], "value", line)
                rows.append((row["timestamp"], ts, n, n))
            else:
                neg, tot = (
                    _count(row["negative"], "negative", line),
                    _count(row["total"], "total", line),
                )
                if neg > tot:
                    raise BacktestInputError(f"line {line}: negative {neg} exceeds total {tot}")
                rows.append((row["timestamp"], ts, neg, tot))
    if not rows:
        raise BacktestInputError(f"{path}: no data rows")
    return rows


def run(
    rows: list[tuple[str, float, int, int]], detector: str, params: dict[str, Any]
) -> Iterator[tuple[str, float, int]]:
    """(timestamp, score, alert) per row."""
    gaps = [b[1] - a[1] for a, b in pairwise(rows)]
    det = create(detector, step_s=min(gaps) if gaps else 1.0, **params)
    for raw, ts, neg, tot in rows:
        last = det.update(ts, neg, tot)[-1]
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
    input_path: Path, output_path: Path, detector: str, params: dict[str, Any]
) -> dict[str, Any]:
    rows = read_series(input_path)
    alerts = 0
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "score", "alert"])
        for raw, score, alert in run(rows, detector, params):
            writer.writerow([raw, f"{score:.4f}", alert])
            alerts += alert
    return {"rows": len(rows), "alerts": alerts, "detector": detector}
