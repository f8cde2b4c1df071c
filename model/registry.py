"""Versioned model directories and the champion pointer.

Layout under the registry root::

    <root>/<version>/model.json    written last: a directory without it is incomplete
    <root>/CHAMPION                the champion's version (one line, replaced atomically)
    <root>/decisions.jsonl         one line per retrain decision

Versions sort by creation time (``20260102T030405-full``), so the newest lists last.

The champion shipped inside the package (``model/assets/champion``, a LoRA adapter bundle)
is the champion of a registry without a ``CHAMPION`` file: a fresh install scores with it,
no training step. A model trained or validated on generated data is never promoted.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model.config import ModelSettings

MODEL_FILE = "model.json"
METRICS_FILE = "metrics.json"
CHAMPION_FILE = "CHAMPION"
DECISIONS_FILE = "decisions.jsonl"
ORIGIN_FILE = "origin.json"  # written by `models import`: where the bundle came from, when
SHIPPED_DIR = Path(__file__).parent / "assets" / "champion"


class ModelNotFoundError(LookupError):
    """A model reference that names no complete model; the message says what exists."""


class PromotionError(ValueError):
    """A model that must not become champion (trained or validated on generated data)."""


@dataclass(frozen=True)
class ModelInfo:
    version: str
    path: Path
    method: str
    created_at: datetime
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    # Where the model came from: {"kind": "trained"}, {"kind": "shipped"} or
    # {"kind": "imported", "from": FILE or URL, "at": ISO time, ...}.
    origin: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> ModelInfo:
        meta = json.loads((path / MODEL_FILE).read_text())
        metrics_path = path / METRICS_FILE
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        origin = {"kind": "trained"}
        if (path / ORIGIN_FILE).is_file():
            origin = json.loads((path / ORIGIN_FILE).read_text())
        return cls(
            version=meta["version"],
            path=path,
            method=meta["method"],
            created_at=datetime.fromisoformat(meta["created_at"]),
            metrics=metrics,
            meta=meta,
            origin=origin,
        )

    @property
    def generated_data(self) -> bool:
        """Trained or validated on generated rows: its metrics measure nothing real."""
        return bool(self.meta.get("data", {}).get("generated"))


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class Registry:
    def __init__(self, root: Path | str, shipped: Path | None = SHIPPED_DIR) -> None:
        """``shipped``: the model that is champion while ``root`` names none (None: no such)."""
        self.root = Path(root)
        self.shipped = shipped if shipped and (shipped / MODEL_FILE).is_file() else None

    def _shipped_version(self) -> str | None:
        if self.shipped is None:
            return None
        return json.loads((self.shipped / MODEL_FILE).read_text())["version"]

    @classmethod
    def of(cls, settings: ModelSettings) -> Registry:
        """The registry the settings name, with the shipped model if ``shipped_model``."""
        return cls(settings.registry_dir, SHIPPED_DIR if settings.shipped_model else None)

    def _read_shipped(self) -> ModelInfo:
        info = ModelInfo.read(self.shipped)
        return replace(info, origin={"kind": "shipped", "from": str(self.shipped)})

    def list(self) -> list[ModelInfo]:
        """The registry's models and the shipped one (unless a copy is registered)."""
        dirs = [p for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []
        infos = [ModelInfo.read(p) for p in dirs if (p / MODEL_FILE).is_file()]
        if self.shipped and self._shipped_version() not in {i.version for i in infos}:
            infos.append(self._read_shipped())
        return sorted(infos, key=lambda i: (i.created_at, i.version))

    def champion_version(self) -> str | None:
        """The champion's version, from a one-line file: cheap enough to poll between batches.

        Without the file, the shipped model's version (None if there is none).
        """
        try:
            return (self.root / CHAMPION_FILE).read_text().strip() or None
        except FileNotFoundError:
            return self._shipped_version()

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
        if self.shipped and ref == self._shipped_version():
            return self._read_shipped()
        known = ", ".join(i.version for i in self.list()) or "none"
        raise ModelNotFoundError(f"no model {ref!r} in {self.root} (versions: {known})")

    def promote(self, ref: str | Path, *, allow_generated: bool = False) -> ModelInfo:
        """Make a registered (or the shipped) model the champion.

        ``allow_generated``: tests only; a model of generated data otherwise is refused.
        """
        info = self.resolve(ref)
        shipped = self.shipped is not None and info.path.resolve() == self.shipped.resolve()
        if info.path.resolve().parent != self.root.resolve() and not shipped:
            raise ModelNotFoundError(f"{info.path} is not in registry {self.root}; copy it first")
        if info.generated_data and not allow_generated:
            raise PromotionError(
                f"{info.version} was trained or validated on generated data "
                f"({info.meta['data'].get('name', 'generated')}); it cannot be champion"
            )
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
