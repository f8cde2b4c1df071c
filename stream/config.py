"""Settings of the stream workers and the embedded runner (section ``[stream]``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: str = "finpulse"
    batch_size: int = Field(default=64, ge=1)
    batch_within_s: float = Field(default=0.5, gt=0)
    window_s: int = Field(default=300, ge=1)
