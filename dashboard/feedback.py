"""Analysts' label corrections, appended as JSONL rows that ``finpulse retrain --feedback`` reads.

Each row carries what ``model.data.load_feedback`` needs (``text``, ``task``, ``label``) plus
where it came from, so a bad correction can be traced to its article and model.

>>> import json, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "fb.jsonl"
>>> log = FeedbackLog(path)
>>> row = log.append(text="Shares sink", task="sentiment", label="Bearish", article_id="a1")
>>> row["label"], json.loads(path.read_text())["text"]
('negative', 'Shares sink')
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from finpulse.contracts import utcnow
from model.labels import LABELS, LabelError, normalize_label


class FeedbackLog:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, *, text: str, task: str, label: str, **context: Any) -> dict[str, Any]:
        """Validate and store one correction; raises ValueError naming a bad task or label."""
        if task not in LABELS:
            raise ValueError(f"task must be one of {sorted(LABELS)}, got {task!r}")
        try:
            label = normalize_label(task, label)
        except LabelError as exc:
            raise ValueError(str(exc)) from None
        if not text.strip():
            raise ValueError("feedback needs the article's text")
        row = {
            "text": text,
            "task": task,
            "label": label,
            **context,
            "created_at": utcnow().isoformat(),
        }
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write per row on an O_APPEND descriptor: concurrent writers never interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return row

    def count(self) -> int:
        if not self.path.is_file():
            return 0
        with self.path.open(encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip())
