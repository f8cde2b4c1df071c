"""JSONL scoring for files and pipes: one output line per input line, in input order.

Input lines are ``{"id": ..., "text": ...}`` objects (``title`` + ``body`` also work) or
plain text. A line that cannot be scored (empty, over-long, bad JSON, a JSON value that is
not an object, bytes that are not UTF-8) gets an error record
``{"id", "line", "error", "model_version"}`` instead of stopping the run.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

# Undecodable bytes, as ``errors="surrogateescape"`` reads them (one per byte).
_RAW_BYTE = re.compile("[\udc80-\udcff]")
# Lone surrogates a JSON escape can still produce ("\\ud800"): not text, not writable.
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Scorer(Protocol):
    version: str

    def predict(self, texts: list[str]) -> list[Any]: ...


@dataclass
class ScoreCounts:
    scored: int = 0
    errors: int = 0


def open_input(source: str) -> TextIO:
    """``source`` (``-``: stdin) as UTF-8 text lines; bytes that are not UTF-8 reach
    :func:`parse_line`, which refuses that line alone. Raises ``OSError`` if unreadable."""
    binary = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    return io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape")


def _json_value(raw: str) -> tuple[bool, Any]:
    """(is JSON, value): a line starting like a JSON object or array is taken as JSON."""
    head = raw.lstrip()[:1]
    if head == "{":
        return True, json.loads(raw)
    if head == "[":
        try:
            return True, json.loads(raw)
        except json.JSONDecodeError:
            return False, None  # "[UPDATE] Fed holds rates": a headline, not JSON
    return False, None


def parse_line(line: str, number: int, max_chars: int) -> tuple[Any, str | None, str | None]:
    """(id, text, error) of one input line; exactly one of text and error is set."""
    raw = line.rstrip("\r\n")
    ident: Any = number
    if bad := _RAW_BYTE.search(raw):
        byte = ord(bad.group()) - 0xDC00
        return ident, None, f"not UTF-8 text: byte 0x{byte:02x} at column {bad.start() + 1}"
    try:
        is_json, obj = _json_value(raw)
    except json.JSONDecodeError as exc:
        return ident, None, f"invalid JSON: {exc.msg} at column {exc.colno}"
    if is_json:
        if not isinstance(obj, dict):
            return ident, None, "a JSON line must be an object with a 'text' field"
        if _SURROGATE.search(json.dumps(obj, ensure_ascii=False)):
            return ident, None, "a JSON string holds a lone surrogate escape (not Unicode text)"
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
