"""What several routers share: the id path parameter, the time-range rule and id lengths."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path as PathParam

from finpulse.contracts import MAX_ID_BYTES

RANGE = "``since`` must be before ``until`` when both are given. "
# An id path parameter: at most MAX_ID_BYTES bytes of UTF-8 (longer ones cannot exist).
Id = Annotated[str, PathParam(max_length=MAX_ID_BYTES)]


def ordered(since: datetime | None, until: datetime | None) -> None:
    """Refuse (400) a range that ends before it starts."""
    if since is not None and until is not None and since >= until:
        raise ValueError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")


def fits(identifier: str) -> bool:
    """Whether an id could be stored at all (a longer one is simply not found)."""
    return len(identifier.encode()) <= MAX_ID_BYTES
