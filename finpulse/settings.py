"""One typed settings object for every role: a TOML file overridden by FINPULSE_* variables.

Precedence (highest first): explicit arguments, environment (``FINPULSE_KAFKA__PARTITIONS=8``),
the TOML file (``--config``, else ``$FINPULSE_CONFIG``, else ``./finpulse.toml`` if present),
then defaults. Every listener defaults to 127.0.0.1 so nothing is exposed by accident.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from alerts.config import AlertsSettings
from dashboard.config import ApiSettings
from ingest.config import IngestSettings
from model.config import ModelSettings
from stream.config import StreamSettings

DEFAULT_CONFIG_FILE = Path("finpulse.toml")
MASK = "**********"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    raw_topic: str = "news.raw"
    scored_topic: str = "news.scored"
    deadletter_topic: str = "news.deadletter"
    rates_topic: str = "news.rates"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    request_timeout_s: float = Field(default=30.0, gt=0)
    # How long a worker's producer waits to fill a request (Faust's producer_linger). A batch
    # of 64 scored articles sent one by one otherwise goes out as dozens of tiny requests:
    # 10 ms halved Kafka's CPU share and raised the worker's rate (stream/README).
    producer_linger_s: float = Field(default=0.01, ge=0)


class ElasticsearchSettings(Section):
    url: str = "http://127.0.0.1:19200"
    index: str = "finpulse-articles"
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    request_timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0)


class StoreSettings(Section):
    """Where scored articles and rates live; SQLite needs no service, so it is the default."""

    backend: Literal["sqlite", "elasticsearch"] = "sqlite"
    sqlite_path: Path = Path("var/finpulse.db")


class MetricsSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=18000, ge=0, le=65535)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FINPULSE_",
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    data_dir: Path = Path("../shared/data")
    kafka: KafkaSettings = KafkaSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    store: StoreSettings = StoreSettings()
    metrics: MetricsSettings = MetricsSettings()
    ingest: IngestSettings = IngestSettings()
    model: ModelSettings = ModelSettings()
    stream: StreamSettings = StreamSettings()
    alerts: AlertsSettings = AlertsSettings()
    api: ApiSettings = ApiSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_CONFIG_FILE.get())
        return init_settings, env_settings, toml


# The file Settings() reads; set only inside load_settings so plain Settings() reads no file.
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("finpulse_config_file", default=None)


class ConfigError(ValueError):
    """An invalid configuration, with the dotted key that is wrong in the message."""


def resolve_config_path(path: str | Path | None = None) -> Path | None:
    """The config file to read: explicit, else $FINPULSE_CONFIG, else ./finpulse.toml if any."""
    if path is not None:
        p = Path(path)
    elif os.environ.get("FINPULSE_CONFIG"):
        p = Path(os.environ["FINPULSE_CONFIG"])
    elif DEFAULT_CONFIG_FILE.is_file():
        return DEFAULT_CONFIG_FILE
    else:
        return None
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    return p


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings, turning validation errors into one message that names each bad key."""
    config_file = resolve_config_path(path)
    token = _CONFIG_FILE.set(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except ValueError as exc:  # TOML syntax errors surface as ValueError subclasses
        raise ConfigError(f"invalid configuration file {config_file}: {exc}") from None
    finally:
        _CONFIG_FILE.reset(token)


def _masked(value: Any) -> Any:
    """Plain TOML-able data with secrets masked and unset (None) keys dropped."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        value = {k: getattr(value, k) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _masked(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value if v is not None]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def to_toml(settings: Settings) -> str:
    """The effective configuration as TOML, secrets masked."""
    return tomli_w.dumps(_masked(settings))
