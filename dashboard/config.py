"""Settings of the dashboard and its JSON API (section ``[api]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Required (Bearer) as soon as host or metrics_host is not a loopback address; checked on
    # every /api call and, off loopback, on every metrics scrape.
    auth_token: SecretStr | None = None
    # Host header names the API answers to (DNS-rebinding guard). Empty: the loopback names
    # and ``host``; on a wildcard host (0.0.0.0) with none listed, any name (the token guards).
    allowed_hosts: list[str] = Field(default_factory=list)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=18002, ge=0, le=65535)
    feedback_path: Path = Path("var/feedback.jsonl")
    # How often the live stream (server-sent events) looks for new articles and alerts.
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    page_size_max: int = Field(default=100, ge=1, le=1000)

    @field_validator("auth_token")
    @classmethod
    def _real_token(cls, v: SecretStr | None) -> SecretStr | None:
        """A blank token would guard nothing (and " " is easy to set by accident)."""
        if v is not None and not v.get_secret_value().strip():
            raise ValueError("auth_token is blank; set a real token or leave it unset")
        return v
