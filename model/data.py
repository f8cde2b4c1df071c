"""Labeled text for the two tasks: files (CSV / JSONL / parquet), hub data sets and feedback.

Feedback rows (what the dashboard writes, one JSON object a line) look like
``{"text": "...", "task": "topic" | "sentiment", "label": "<label name or data set id>"}``.

>>> texts = [f"tweet {i}" for i in range(1000)]
>>> bool((holdout_mask(texts, 0.5) == holdout_mask(texts, 0.5)).all())
True
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from model.labels import LABELS, TASKS, LabelError, normalize_label

HUB_PREFIX = "hub:"
# The labelled tweets (MIT), gzipped, shipped in the package: the default data everywhere.
SHIPPED_DATA = Path(__file__).parent / "assets" / "data"


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
    if suffix == ".gz":  # pandas reads .csv.gz itself; JSONL goes through gzip.open
        suffix = Path(path.stem).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = []
        with _open_text(path) as fh:
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


def _open_text(path: Path) -> TextIO:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def resolve_file(data_dir: Path, ref: str) -> Path | str:
    """``data_dir/ref`` where it exists (the override), else the shipped ``ref.gz``."""
    if ref.startswith(HUB_PREFIX):
        return ref
    path = Path(data_dir) / ref
    shipped = SHIPPED_DATA / f"{ref}.gz"
    return shipped if not path.is_file() and shipped.is_file() else path


def sha256_of(fh: BinaryIO) -> str:
    """sha256 of what a binary file object reads, in 1 MiB chunks."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """sha256 of a file's content, decompressed if gzipped: the shipped copy hashes as the
    original CSV does."""
    with gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb") as fh:
        return sha256_of(fh)


def load_split(data_dir: Path, files: dict[str, dict[str, str]], split: str) -> dict[str, Labeled]:
    """Both tasks' data of one split (``train`` or ``valid``) as the settings name them."""
    return {
        task: load_labeled(resolve_file(data_dir, files[task][split]), task, split=split)
        for task in TASKS
    }


def split_source(data_dir: Path, files: dict[str, dict[str, str]], split: str) -> dict:
    """Where one split's data came from: per task the configured file, the file read and the
    sha256 of its content."""
    out = {}
    for task in TASKS:
        ref = files[task][split]
        path = resolve_file(data_dir, ref)
        read = {"file": ref, "read": str(path)}
        if isinstance(path, Path) and path.is_file():
            read["sha256"] = content_sha256(path)
        out[task] = read
    return out


def fingerprint(split: dict) -> str:
    """A short id of one split's data: the first 12 hex digits of the hash of its files' hashes."""
    joined = "".join(split[t].get("sha256", split[t]["file"]) for t in sorted(split))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def describe(source: dict | None) -> str:
    """One line naming the data a model's validation metrics were measured on."""
    if not source:
        return "data not recorded"
    if source.get("generated"):
        return f"GENERATED data ({source.get('name', 'generated')}): not a real measurement"
    valid = source.get("valid")
    if not valid:
        return source.get("name", "in-memory rows")
    names = ", ".join(v["file"] for v in valid.values())
    return f"{names} (sha256 {fingerprint(valid)})"


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
