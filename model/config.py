"""Settings of the classifier, its registry and the scorer (section ``[model]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registry_dir: Path = Path("models")
    base_model: str | None = None  # an HF-format directory; None = packaged MiniLM-L6
    max_length: int = Field(default=64, ge=8, le=512)
    batch_size: int = Field(default=64, ge=1)
