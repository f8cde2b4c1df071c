"""The configuration sections every package shares: Kafka, Elasticsearch, the store, metrics.

Each package owns its own section (``ingest/config.py``, ``stream/config.py``, ...); the ones
here are read by more than one package. The whole configuration is assembled from all of
them by :mod:`app.settings`, which no runtime package imports, so this module imports none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Section(BaseModel):
    """A ``[section]`` of the configuration: an unknown key is a typo, refused by name."""

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
    # How long a producer (ingest's and the worker's, Faust's producer_linger) waits to fill a
    # request. A batch of 64 scored articles sent one by one otherwise goes out as dozens of
    # tiny requests: 10 ms halved Kafka's CPU share and raised the worker's rate (stream/README).
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
