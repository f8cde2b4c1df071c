"""One typed settings object for every role: a TOML file overridden by FINPULSE_* variables.

It assembles the sections that each package owns (``ingest/config.py``, ``stream/config.py``,
..., the shared ones in :mod:`finpulse.config`). Runtime packages never import this module
(only under ``TYPE_CHECKING``, for the type): the root command loads the settings and hands
them down, so the packages and this assembler form no import cycle.

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
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import tomli_w
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from alerts.config import AlertsSettings
from dashboard.config import ApiSettings
from finpulse.config import (
    ElasticsearchSettings,
    KafkaSettings,
    MetricsSettings,
    StoreSettings,
)
from finpulse.errors import invalid_fields
from ingest.config import IngestSettings
from model.config import ModelSettings
from stream.config import StreamSettings

DEFAULT_CONFIG_FILE = Path("finpulse.toml")
MASK = "**********"


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
        raise ConfigError(f"invalid configuration: {invalid_fields(exc)}") from None
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
