"""One typed settings object for every role: a TOML file overridden by FINPULSE_* variables.

Precedence (highest first): explicit arguments, environment (``FINPULSE_KAFKA__PARTITIONS=8``),
the TOML file (``--config``, else ``$FINPULSE_CONFIG``, else ``./finpulse.toml`` if present),
then defaults. Every listener defaults to 127.0.0.1 so nothing is exposed by accident.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from enum import Enum
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

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

    def client_config(self, client_id: str) -> dict[str, Any]:
        """Connection settings of every Kafka client, in kafka-python's names (the Faust app
        derives its own from these), so bootstrap, security and timeouts are set in one place.

        >>> cfg = KafkaSettings(bootstrap_servers="a:9092, b:9092").client_config("x")
        >>> cfg["bootstrap_servers"], cfg["request_timeout_ms"]
        (['a:9092', 'b:9092'], 30000)
        """
        cfg: dict[str, Any] = {
            "bootstrap_servers": [hp.strip() for hp in self.bootstrap_servers.split(",")],
            "security_protocol": self.security_protocol,
            "request_timeout_ms": int(self.request_timeout_s * 1000),
            "client_id": client_id,
        }
        if self.sasl_mechanism or self.security_protocol.startswith("SASL"):
            cfg["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            cfg["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                cfg["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return cfg


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


# Names (of settings, header keys, URL query parameters) whose value is a secret, by word:
# "X-Api-Token", "sasl_password", "Authorization", "api_key"; not "max_keys_per_scope".
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "secret", "secrets", "token", "apikey", "authorization",
    "auth", "cookie", "credential", "credentials", "signature", "jwt",
})  # fmt: skip
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"),
                           ("routing", "key"), ("secret", "key"), ("signing", "key")})  # fmt: skip
# In a URL's query string a bare "key" or "sig" is a credential too (?key=..., SAS ?sig=...).
_SECRET_QUERY_WORDS = _SECRET_WORDS | {"key", "sig", "code"}
# A path segment that looks like a credential (webhook URLs carry their token in the path).
_TOKENISH = re.compile(r"(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{20,}")


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def is_secret_name(name: str, words: frozenset[str] = _SECRET_WORDS) -> bool:
    """Whether a setting, header or parameter called ``name`` holds a secret.

    >>> [is_secret_name(n) for n in ("X-Api-Token", "api_key", "max_keys_per_scope", "url")]
    [True, True, False, False]
    """
    parts = _words(name)
    return any(w in words for w in parts) or any(p in _SECRET_PAIRS for p in pairwise(parts))


def mask_url(text: str) -> str:
    """``text`` with the secrets of a URL masked: userinfo, secret query values, token paths.

    >>> mask_url("https://u:pw@es.example.com:9200/x?token=abc&page=2")
    'https://u:**********@es.example.com:9200/x?token=**********&page=2'
    """
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return MASK  # not parseable, so not safely shown in part
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else f"{MASK}@{host}"
    query = "&".join(
        f"{k}={MASK}" if v and is_secret_name(k, _SECRET_QUERY_WORDS) else pair
        for pair in parts.query.split("&")
        if pair
        for k, _, v in [pair.partition("=")]
    )
    path = "/".join(MASK if _TOKENISH.fullmatch(seg) else seg for seg in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def _masked(value: Any, name: str = "") -> Any:
    """Plain TOML-able data with secrets masked and unset (None) keys dropped.

    A secret is masked wherever it sits: a SecretStr, a value under a secret-sounding name
    (a webhook's ``Authorization`` header), or inside a URL (password, ``?token=``).
    """
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        value = {k: getattr(value, k) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _masked(v, str(k)) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_masked(v, name) for v in value if v is not None]
    if isinstance(value, str):
        return MASK if value and is_secret_name(name) else mask_url(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def to_toml(settings: Settings) -> str:
    """The effective configuration as TOML, secrets masked."""
    return tomli_w.dumps(_masked(settings))
