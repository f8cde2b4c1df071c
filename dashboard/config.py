"""Settings of the dashboard and its JSON API (section ``[api]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Required (Bearer) as soon as host is not a loopback address; checked on every /api call.
    auth_token: SecretStr | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=18002, ge=0, le=65535)
    feedback_path: Path = Path("var/feedback.jsonl")
    # How often the live stream (server-sent events) looks for new articles and alerts.
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    page_size_max: int = Field(default=100, ge=1, le=1000)
