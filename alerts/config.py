"""Settings of spike detection, alert lifecycle and notifiers (section ``[alerts]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class AlertsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state_db: Path = Path("var/alerts.db")
