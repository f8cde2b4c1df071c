"""Versioned model directories and the champion pointer.

Layout under the registry root::

    <root>/<version>/model.json    written last: a directory without it is incomplete
    <root>/CHAMPION                the champion's version (one line, replaced atomically)
    <root>/decisions.jsonl         one line per retrain decision

Versions sort by creation time (``20260102T030405-full``), so the newest lists last.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MODEL_FILE = "model.json"
METRICS_FILE = "metrics.json"
CHAMPION_FILE = "CHAMPION"
DECISIONS_FILE = "decisions.jsonl"


class ModelNotFoundError(LookupError):
    """A model reference that names no complete model; the message says what exists."""


@dataclass(frozen=True)
class ModelInfo:
    version: str
    path: Path
    method: str
    created_at: datetime
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> ModelInfo:
        meta = json.loads((path / MODEL_FILE).read_text())
        metrics_path = path / METRICS_FILE
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        return cls(
            version=meta["version"],
            path=path,
            method=meta["method"],
            created_at=datetime.fromisoformat(meta["created_at"]),
            metrics=metrics,
            meta=meta,
        )


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class Registry:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def list(self) -> list[ModelInfo]:
        if not self.root.is_dir():
            return []
        infos = [
            ModelInfo.read(p)
            for p in self.root.iterdir()
            if p.is_dir() and (p / MODEL_FILE).is_file()
        ]
        return sorted(infos, key=lambda i: (i.created_at, i.version))

    def champion_version(self) -> str | None:
        """The champion's version, from a one-line file: cheap enough to poll between batches."""
        try:
            return (self.root / CHAMPION_FILE).read_text().strip() or None
        except FileNotFoundError:
            return None

    def champion(self) -> ModelInfo | None:
        version = self.champion_version()
        return self.resolve(version) if version else None

    def resolve(self, ref: str | Path) -> ModelInfo:
        """``champion``, ``latest``, a version in this registry, or a model directory path."""
        ref = str(ref)
        if ref == "champion":
            version = self.champion_version()
            if version is None:
                raise ModelNotFoundError(
                    f"no champion in {self.root}; train one (`finpulse train --method head`) "
                    "or promote one (`finpulse models promote VERSION`)"
                )
            ref = version
        elif ref == "latest":
            models = self.list()
            if not models:
                raise ModelNotFoundError(f"no models in {self.root}")
            return models[-1]
        for candidate in (self.root / ref, Path(ref)):
            if (candidate / MODEL_FILE).is_file():
                return ModelInfo.read(candidate)
        known = ", ".join(i.version for i in self.list()) or "none"
        raise ModelNotFoundError(f"no model {ref!r} in {self.root} (versions: {known})")

    def promote(self, ref: str | Path) -> ModelInfo:
        info = self.resolve(ref)
        if info.path.resolve().parent != self.root.resolve():
            raise ModelNotFoundError(f"{info.path} is not in registry {self.root}; copy it first")
        _write_atomic(self.root / CHAMPION_FILE, info.version + "\n")
        return info

    def new_version_dir(self, method: str, now: datetime | None = None) -> Path:
        """A fresh, empty directory for a model being written (complete once model.json is)."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
        base = f"{stamp}-{method}"
        for n in range(1, 1000):
            path = self.root / (base if n == 1 else f"{base}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise RuntimeError(f"cannot allocate a version directory for {base}")

    def record_decision(self, decision: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / DECISIONS_FILE).open("a") as fh:
            fh.write(json.dumps(decision, default=str) + "\n")

    def decisions(self) -> list[dict[str, Any]]:
        path = self.root / DECISIONS_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
