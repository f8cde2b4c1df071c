"""Small JSON state files written so a crash leaves the old state or the new one, never half,
and the lock that keeps two processes from sharing them."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO


class StateError(RuntimeError):
    """State that cannot be used as it is: unreadable, or held by another process."""


def read_state(path: Path | None) -> dict[str, Any] | None:
    """The saved state, None when there is none; an unreadable file is an error to act on."""
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"state file {path} is unreadable ({exc}); move it away to start "
                         "the open rate windows from zero") from None  # fmt: skip
    if not isinstance(data, dict):
        raise StateError(f"state file {path} holds no JSON object; move it away to start "
                         "the open rate windows from zero")  # fmt: skip
    return data


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Write, fsync, rename, fsync the directory: after a power loss the file is the old
    state or the new one, never empty (a rename can reach the disk before the data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json.dumps(data))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateLock:
    """An exclusive ``flock`` on ``<path>.lock``, held while the state is in use.

    Two runners on one state (the SQLite store, its rate windows, the alert database) would
    overwrite each other's windows and page twice; the second one must refuse to start. The
    kernel drops the lock when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path).with_name(Path(path).name + ".lock")
        self._file: TextIO | None = None

    def __enter__(self) -> StateLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise StateError(
                f"{self.path} is locked by {holder}: another runner uses this state; stop it "
                "or give this one its own store.sqlite_path and alerts.state_db"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
