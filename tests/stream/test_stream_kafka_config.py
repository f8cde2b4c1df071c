"""One Kafka connection config: kafka-python clients and the Faust app read the same one."""

import faust

from finpulse.config import KafkaSettings
from stream.faust_app import _credentials


def test_plaintext_has_no_credentials():
    cfg = KafkaSettings(bootstrap_servers="k1:9092,k2:9092").client_config("c")
    assert cfg == {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "security_protocol": "PLAINTEXT",
        "request_timeout_ms": 30_000,
        "client_id": "c",
    }
    assert _credentials(cfg) is None


def test_sasl_is_the_same_for_every_client():
    k = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="pw",
        request_timeout_s=2.5,
    )
    cfg = k.client_config("c")
    assert (cfg["sasl_mechanism"], cfg["sasl_plain_username"], cfg["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "svc",
        "pw",
    )
    assert cfg["request_timeout_ms"] == 2500
    creds = _credentials(cfg)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.ssl_context is not None) == ("svc", "pw", True)
    assert str(creds.mechanism.value) == "SCRAM-SHA-512"


def test_sasl_without_a_mechanism_means_plain_and_ssl_alone_only_a_context():
    cfg = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="u").client_config("c")
    assert cfg["sasl_mechanism"] == "PLAIN"
    creds = _credentials(cfg)
    assert (str(creds.mechanism.value), creds.ssl_context) == ("PLAIN", None)
    ssl_only = _credentials(KafkaSettings(security_protocol="SSL").client_config("c"))
    assert isinstance(ssl_only, faust.SSLCredentials)
