"""Labeled text for the two tasks: files (CSV / JSONL / parquet), hub data sets and feedback.

Feedback rows (what the dashboard writes, one JSON object a line) look like
``{"text": "...", "task": "topic" | "sentiment", "label": "<label name or data set id>"}``.

>>> texts = [f"tweet {i}" for i in range(1000)]
>>> bool((holdout_mask(texts, 0.5) == holdout_mask(texts, 0.5)).all())
True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.labels import LABELS, TASKS, LabelError, normalize_label

HUB_PREFIX = "hub:"


class DataError(ValueError):
    """Unreadable or mislabeled training data; the message names the file and the row."""


@dataclass(frozen=True)
class Labeled:
    """Texts of one task with their label names."""

    task: str
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, mask: np.ndarray) -> Labeled:
        keep = np.flatnonzero(mask)
        return Labeled(self.task, [self.texts[i] for i in keep], [self.labels[i] for i in keep])

    def __add__(self, other: Labeled) -> Labeled:
        if other.task != self.task:
            raise ValueError(f"cannot join {self.task} and {other.task} data")
        return Labeled(self.task, self.texts + other.texts, self.labels + other.labels)


def _read_table(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = []
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        return rows
    import pandas as pd

    if suffix in (".csv", ".tsv"):
        frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False)
    elif suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise DataError(f"{path}: parquet files need `pip install pyarrow`") from None
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r} (csv, tsv, jsonl, parquet)")
    return frame.to_dict("records")


def _read_hub(name: str, split: str) -> list[dict]:
    """Rows of a hub data set ``hub:owner/name[:split]``; needs the optional `datasets`."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{name}: hub data sets need the `datasets` package") from None
    ref = name.removeprefix(HUB_PREFIX)
    ref, _, explicit = ref.partition(":")
    hub_split = explicit or ("validation" if split == "valid" else split)
    return list(datasets.load_dataset(ref, split=hub_split))


def load_labeled(
    source: str | Path,
    task: str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    split: str = "train",
    names: list[str] | None = None,
) -> Labeled:
    """Read one task's texts and labels; empty texts are dropped, bad labels are errors."""
    if str(source).startswith(HUB_PREFIX):
        rows = _read_hub(str(source), split)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        rows = _read_table(path)
    texts, labels = [], []
    for n, row in enumerate(rows, 1):
        if text_column not in row or label_column not in row:
            raise DataError(f"{source} row {n}: needs columns {text_column!r} and {label_column!r}")
        text = str(row[text_column] or "").strip()
        if not text:
            continue
        try:
            labels.append(normalize_label(task, row[label_column], names))
        except LabelError as exc:
            raise DataError(f"{source} row {n}: {exc}") from None
        texts.append(text)
    if not texts:
        raise DataError(f"{source}: no labeled rows")
    return Labeled(task, texts, labels)


def load_split(data_dir: Path, files: dict[str, dict[str, str]], split: str) -> dict[str, Labeled]:
    """Both tasks' data of one split (``train`` or ``valid``) as the settings name them."""
    out = {}
    for task in TASKS:
        ref = files[task][split]
        source = ref if ref.startswith(HUB_PREFIX) else Path(data_dir) / ref
        out[task] = load_labeled(source, task, split=split)
    return out


def load_feedback(path: Path) -> dict[str, Labeled]:
    """Feedback JSONL rows grouped by task; a row with an unknown task or label is an error."""
    by_task: dict[str, tuple[list[str], list[str]]] = {t: ([], []) for t in TASKS}
    for n, row in enumerate(_read_table(Path(path)), 1):
        task, text = row.get("task"), str(row.get("text") or "").strip()
        if task not in LABELS:
            raise DataError(f"{path} row {n}: task must be one of {TASKS}, got {task!r}")
        if not text:
            raise DataError(f"{path} row {n}: empty text")
        try:
            label = normalize_label(task, row.get("label"))
        except LabelError as exc:
            raise DataError(f"{path} row {n}: {exc}") from None
        by_task[task][0].append(text)
        by_task[task][1].append(label)
    return {t: Labeled(t, x, y) for t, (x, y) in by_task.items() if x}


def holdout_mask(texts: list[str], fraction: float, salt: str = "finpulse") -> np.ndarray:
    """Deterministic membership by text hash: the same texts are held out on every run."""
    cut = int(fraction * 2**32)
    return np.array(
        [
            int.from_bytes(hashlib.blake2b((salt + t).encode(), digest_size=4).digest()) < cut
            for t in texts
        ],
        dtype=bool,
    )
