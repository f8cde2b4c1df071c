"""Replay a local JSONL or CSV file as articles: backfills, demos and load tests.

Every row becomes one article whose id comes from the file name and row number, so a
labeled data set with repeated or templated texts still yields exactly one article per row;
the duplicate filters are off unless ``dedup`` is set. Without a time column, rows get a
synthetic timeline (``start`` + row × ``spacing_s``) so a file replays as a live stream.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from finpulse.contracts import utcnow
from ingest.config import SourceOptions
from ingest.fetch import FetchError
from ingest.normalise import RawItem
from ingest.sources.base import Source, register_source

csv.field_size_limit(16 * 1024 * 1024)


class ReplayOptions(SourceOptions):
    kind: Literal["replay"] = "replay"
    name: str = Field(default="", pattern=r"^[A-Za-z0-9_.:-]*$")  # default: replay:<file name>
    path: Path
    format: Literal["auto", "csv", "jsonl"] = "auto"
    text_column: str = "text"
    title_column: str | None = None
    url_column: str | None = None
    time_column: str | None = None
    label_column: str | None = None
    rate: float = Field(default=0.0, ge=0, description="rows per second; 0 = as fast as possible")
    start: datetime | None = None  # synthetic timeline start (default: when the replay starts)
    spacing_s: float | None = Field(default=None, ge=0)  # default: 1/rate, or 1 s at rate 0
    dedup: bool = False

    @model_validator(mode="after")
    def _default_name(self) -> ReplayOptions:
        if not self.name:
            self.name = "replay:" + re.sub(r"[^A-Za-z0-9_.-]", "_", self.path.name)
        return self


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(row number from 1, row or None if unparseable, reason) for each record of the file."""
    if fmt == "auto":
        fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        if fmt == "csv":
            for n, row in enumerate(csv.DictReader(fh), start=1):
                yield n, row, ""
            return
        n = 0
        for line in fh:
            if not line.strip():
                continue
            n += 1
            try:
                obj = json.loads(line)
            except ValueError as exc:
                yield n, None, f"row {n}: not JSON ({exc})"
                continue
            yield (n, obj, "") if isinstance(obj, dict) else (n, None, f"row {n}: not an object")


def _columns(path: Path, fmt: str) -> list[str] | None:
    if fmt == "csv" or (fmt == "auto" and path.suffix.lower() == ".csv"):
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            return next(csv.reader(fh), [])
    return None


@register_source
class ReplaySource(Source):
    kind = "replay"
    Options = ReplayOptions
    options: ReplayOptions
    finite = True

    @property
    def dedup(self) -> bool:
        return self.options.dedup

    def _check(self) -> None:
        o = self.options
        if not o.path.is_file():
            raise FetchError("config", f"replay file not found: {o.path}")
        columns = _columns(o.path, o.format)
        wanted = [o.text_column, o.title_column, o.url_column, o.time_column, o.label_column]
        missing = [c for c in wanted if c and columns is not None and c not in columns]
        if missing:
            raise FetchError("config", f"{o.path}: no column {missing} (columns: {columns})")

    async def poll(self) -> AsyncIterator[RawItem]:
        self._check()
        o = self.options
        start = o.start or utcnow()
        spacing = timedelta(seconds=o.spacing_s if o.spacing_s is not None else 1 / (o.rate or 1))
        t0 = self.ctx.clock()
        for n, row, reason in read_rows(o.path, o.format):
            if o.rate:
                wait = t0 + (n - 1) / o.rate - self.ctx.clock()
                if wait > 0:
                    await self.ctx.sleep(wait)
            if row is None:
                self.ctx.on_error(self.name, "parse", f"{o.path}: {reason}")
                continue
            yield RawItem(
                source=self.name,
                guid=str(n),
                title=_get(row, o.title_column),
                body=_get(row, o.text_column),
                url=_get(row, o.url_column),
                published=row.get(o.time_column) if o.time_column else start + (n - 1) * spacing,
                lang=o.lang,
                row_id=not o.dedup,
                extra={"label": row.get(o.label_column)} if o.label_column else {},
            )


def _get(row: dict[str, Any], column: str | None) -> str | None:
    value = row.get(column) if column else None
    return None if value is None else str(value)
