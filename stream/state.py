"""Small JSON state files written so a crash leaves the old state or the new one, never half."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_state(path: Path | None) -> dict[str, Any] | None:
    """The saved state, None when there is none; an unreadable file is an error to act on."""
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"state file {path} is unreadable ({exc}); move it away to start "
                         "the open rate windows from zero") from exc  # fmt: skip


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
