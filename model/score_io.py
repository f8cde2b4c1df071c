"""JSONL scoring for files and pipes: one output line per input line, in input order.

Input lines are ``{"id": ..., "text": ...}`` objects (``title`` + ``body`` also work) or
plain text. A line that cannot be scored (empty, over-long, bad JSON) gets an error record
``{"id", "line", "error", "model_version"}`` instead of stopping the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TextIO


class _Scorer(Protocol):
    version: str

    def predict(self, texts: list[str]) -> list[Any]: ...


@dataclass
class ScoreCounts:
    scored: int = 0
    errors: int = 0


def parse_line(line: str, number: int, max_chars: int) -> tuple[Any, str | None, str | None]:
    """(id, text, error) of one input line; exactly one of text and error is set."""
    raw = line.rstrip("\r\n")
    ident: Any = number
    if raw.lstrip().startswith("{"):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            return ident, None, f"invalid JSON: {exc.msg} at column {exc.colno}"
        if not isinstance(obj, dict):
            return ident, None, "a JSON line must be an object with a 'text' field"
        ident = obj.get("id", number)
        text = obj.get("text")
        if text is None and obj.get("title"):
            text = f"{obj['title']}. {str(obj.get('body') or '')[:500]}".strip()
        if text is not None and not isinstance(text, str):
            return ident, None, "'text' must be a string"
        text = (text or "").strip()
    else:
        text = raw.strip()
    if not text:
        return ident, None, "empty text"
    if len(text) > max_chars:
        return ident, None, f"text too long: {len(text)} characters (limit {max_chars})"
    return ident, text, None


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        chunk.append((number, line))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score_lines(
    scorer: _Scorer, lines: Iterable[str], out: TextIO, *, max_chars: int, chunk: int = 1024
) -> ScoreCounts:
    counts = ScoreCounts()
    for part in _chunks(lines, chunk):
        parsed = [(n, *parse_line(line, n, max_chars)) for n, line in part]
        texts = [text for _, _, text, error in parsed if error is None]
        predictions = iter(scorer.predict(texts) if texts else [])
        for number, ident, _, error in parsed:
            if error is not None:
                record = {"id": ident, "line": number, "error": error}
                counts.errors += 1
            else:
                p = next(predictions)
                record = {
                    "id": ident,
                    "topic": p.topic,
                    "topic_probs": p.topic_probs,
                    "sentiment": p.sentiment,
                    "sentiment_probs": p.sentiment_probs,
                }
                counts.scored += 1
            record["model_version"] = scorer.version
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    return counts
