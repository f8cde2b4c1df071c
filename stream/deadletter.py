"""Messages the pipeline cannot process: kept byte for byte with the reason, never dropped.

On Kafka the dead letter's value is the original bytes and the reason travels in headers
(the Kafka Connect convention), so replaying a fixed message is a plain re-produce. The
embedded runner appends JSON lines instead (original bytes in base64).

>>> from finpulse.contracts import Article
>>> article, letter = decode_or_deadletter(Article, b"{not json", topic="news.raw", offset=7)
>>> article is None, letter.reason.value, letter.offset
(True, 'malformed', 7)
>>> letter == DeadLetter.from_json(letter.to_json())
True
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from finpulse.contracts import ContractError, decode

M = TypeVar("M", bound=BaseModel)
HEADER_PREFIX = "finpulse.deadletter."


class Reason(StrEnum):
    MALFORMED = "malformed"  # not JSON at all
    INVALID = "invalid"  # JSON that breaks the message contract
    SCORING_FAILED = "scoring_failed"  # the model could not score it
    STORE_REJECTED = "store_rejected"  # the store refused the document for good
    UNDELIVERABLE = "undeliverable"  # its output cannot be produced (e.g. over the size limit)


@dataclass(frozen=True)
class DeadLetter:
    reason: Reason
    error: str
    original: bytes
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None

    def capped(self, max_bytes: int) -> DeadLetter:
        """This letter with its original cut to ``max_bytes``, so the letter itself can be
        produced; the error says how long the original was."""
        if len(self.original) <= max_bytes:
            return self
        error = f"{self.error} [original {len(self.original)} bytes, kept the first {max_bytes}]"
        return replace(self, original=self.original[:max_bytes], error=error)

    def headers(self) -> list[tuple[str, bytes]]:
        fields = {"reason": self.reason.value, "error": self.error[:1000], "topic": self.topic,
                  "partition": self.partition, "offset": self.offset}  # fmt: skip
        return [(HEADER_PREFIX + k, str(v).encode()) for k, v in fields.items() if v is not None]

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["original"] = base64.b64encode(self.original).decode()
        data["key"] = base64.b64encode(self.key).decode() if self.key is not None else None
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> DeadLetter:
        data = json.loads(line)
        data["reason"] = Reason(data["reason"])
        data["original"] = base64.b64decode(data["original"])
        data["key"] = base64.b64decode(data["key"]) if data.get("key") is not None else None
        return cls(**data)


def decode_or_deadletter(
    model: type[M], data: bytes | None, **where: Any
) -> tuple[M | None, DeadLetter | None]:
    """The decoded message, or the dead letter that says why it is not one."""
    raw = data if data is not None else b""
    try:
        return decode(model, raw), None
    except ContractError as exc:
        reason = Reason.INVALID if exc.field else Reason.MALFORMED
        return None, DeadLetter(reason, str(exc), raw, **where)


class DeadLetterSink(Protocol):
    async def put(self, letter: DeadLetter) -> None: ...


class JsonlDeadLetters:
    """Append-only JSON-lines file of dead letters (the embedded runner's sink)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    async def put(self, letter: DeadLetter) -> None:
        await asyncio.to_thread(self._append, letter.to_json())

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def read(self) -> list[DeadLetter]:
        if not self.path.exists():
            return []
        return [DeadLetter.from_json(line) for line in self.path.read_text().splitlines() if line]
