"""Fixtures for the real services that deploy/local/services.sh runs on 127.0.0.1, and for the
browser the dashboard test drives.

A service that is down, or a browser that is not installed, FAILS the test that needs it, naming
what to start or install: integration tests are never skipped silently.
"""

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server

KAFKA_BOOTSTRAP = "127.0.0.1:19092"
ELASTICSEARCH_URL = "http://127.0.0.1:19200"
PROMETHEUS_URL = "http://127.0.0.1:19090"
ALERTMANAGER_URL = "http://127.0.0.1:19095"
# Ports that deploy/prometheus/prometheus.local.yml scrapes (job "finpulse", component "worker")
# and that deploy/alertmanager/alertmanager.local.yml sends every notification to.
METRICS_PORT = 18000
WEBHOOK_PORT = 18099
WEBHOOK_PATH = "/alertmanager"

LOCAL = Path(__file__).resolve().parents[1] / "deploy/local"
HINT = "start them with deploy/local/services.sh up (check: deploy/local/services.sh status)"
INSTALL = "(as root: make deps)"


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    elasticsearch_url: str
    prometheus_url: str
    alertmanager_url: str


def _missing_packages(script: str, *args: str) -> str:
    """The Debian packages a deploy/local script finds missing, space-separated."""
    result = subprocess.run(
        [LOCAL / script, "missing", *args], capture_output=True, text=True, timeout=30, check=True
    )
    return " ".join(result.stdout.split())


def _require(name: str, service: str, check: Callable[[], object]) -> None:
    try:
        check()
    except (OSError, httpx.HTTPError) as exc:
        error = repr(exc)
    else:
        return
    if missing := _missing_packages("services.sh", service):
        hint = f"{service} cannot run here, missing Debian packages: {missing} {INSTALL}"
    else:
        hint = HINT
    pytest.fail(f"{name} is not reachable ({error}); {hint}", pytrace=False)


def _http_ok(url: str) -> Callable[[], object]:
    return lambda: httpx.get(url, timeout=5).raise_for_status()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    host, port = KAFKA_BOOTSTRAP.rsplit(":", 1)
    _require(
        f"Kafka at {KAFKA_BOOTSTRAP}",
        "kafka",
        lambda: socket.create_connection((host, int(port)), timeout=5).close(),
    )
    return KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    _require(
        f"Elasticsearch at {ELASTICSEARCH_URL}",
        "elasticsearch",
        _http_ok(f"{ELASTICSEARCH_URL}/_cluster/health?wait_for_status=yellow&timeout=5s"),
    )
    return ELASTICSEARCH_URL


@pytest.fixture(scope="session")
def prometheus_url() -> str:
    _require(f"Prometheus at {PROMETHEUS_URL}", "prometheus", _http_ok(f"{PROMETHEUS_URL}/-/ready"))
    return PROMETHEUS_URL


@pytest.fixture(scope="session")
def alertmanager_url() -> str:
    _require(
        f"Alertmanager at {ALERTMANAGER_URL}",
        "alertmanager",
        _http_ok(f"{ALERTMANAGER_URL}/-/ready"),
    )
    return ALERTMANAGER_URL


@pytest.fixture(scope="session")
def services(kafka_bootstrap, elasticsearch_url, prometheus_url, alertmanager_url) -> Services:
    """All four services, each checked to be up."""
    return Services(kafka_bootstrap, elasticsearch_url, prometheus_url, alertmanager_url)


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of Debian's chromium and its chromedriver, the pair the browser test drives."""
    if missing := _missing_packages("deps.sh", "chromium", "chromedriver"):
        pytest.fail(f"missing Debian packages: {missing} {INSTALL}", pytrace=False)
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def metrics_registry() -> Iterator[CollectorRegistry]:
    """A fresh registry served on 127.0.0.1:18000, where the local Prometheus scrapes it."""
    registry = CollectorRegistry()
    try:
        server, thread = start_http_server(METRICS_PORT, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        pytest.fail(f"cannot serve metrics on 127.0.0.1:{METRICS_PORT} ({exc}); a worker running?")
    yield registry
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class AlertWebhook:
    """Collects the JSON bodies Alertmanager POSTs to http://127.0.0.1:18099/alertmanager."""

    def __init__(self) -> None:
        self.payloads: list[dict] = []
        self._cond = threading.Condition()

    def add(self, payload: dict) -> None:
        with self._cond:
            self.payloads.append(payload)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float) -> dict:
        """Returns the first payload matching predicate; fails after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for payload in self.payloads:
                    if predicate(payload):
                        return payload
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"no matching Alertmanager notification within {timeout}s; "
                        f"got {len(self.payloads)}: {self.payloads!r}"
                    )
                self._cond.wait(left)


@pytest.fixture
def alert_webhook() -> Iterator[AlertWebhook]:
    webhook = AlertWebhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200 if self.path == WEBHOOK_PATH else 404)
            self.end_headers()
            if self.path == WEBHOOK_PATH:
                webhook.add(json.loads(body))

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    try:
        server = ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), Handler)
    except OSError as exc:
        pytest.fail(f"cannot listen on 127.0.0.1:{WEBHOOK_PORT} for Alertmanager's webhook ({exc})")
    thread = threading.Thread(target=server.serve_forever, name="alert-webhook", daemon=True)
    thread.start()
    yield webhook
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
