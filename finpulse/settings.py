"""Transitional: the assembled settings moved to :mod:`app.settings` (issue 19)."""

from app.settings import *  # noqa: F403
from app.settings import ConfigError, Settings, load_settings, to_toml  # noqa: F401
from finpulse.config import (  # noqa: F401
    ElasticsearchSettings,
    KafkaSettings,
    MetricsSettings,
    StoreSettings,
)
