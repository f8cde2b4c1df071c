"""Hostile input and hostile pages: 4xx never 500, keep-alive kept, Host/CSP/token guards."""

import http.client
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn
from conftest import LOCAL
from dashboard_helpers import free_port
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from app.settings import ConfigError, load_settings
from dashboard.app import create_app
from dashboard.config import ApiSettings
from dashboard.server import metrics_listener


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/api/rates", {"step_s": "1e10"}, 422, "step_s: Input should be a valid integer"),
        ("/api/rates", {"step_s": 10**10}, 422, "step_s: Input should be less than or equal"),
        ("/api/rates", {"until": "0.5"}, 422, "until: must be an RFC 3339 date-time"),
        ("/api/articles", {"until": "0.5"}, 422, "until: must be an RFC 3339 date-time"),
        ("/api/articles", {"page": 101}, 422, "page: Input should be less than or equal to 100"),
        ("/api/articles/" + "x" * 600, {}, 422, "article_id: String should have at most 512"),
        ("/api/articles/" + "é" * 300, {}, 404, "no article with id"),  # 600 bytes: not stored
        ("/api/alerts/" + "x" * 600, {}, 422, "alert_id: String should have at most 512"),
        (
            "/api/rates",
            {"since": "2026-01-06T00:00:00Z", "until": "2026-01-05T00:00:00Z"},
            400,
            "must be before until",
        ),
    ],
)
def test_out_of_range_parameters_are_4xx_with_the_reason(client, path, params, status, message):
    resp = client.get(path, params=params)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]


@pytest.mark.parametrize(
    "params",
    [
        {"until": "0001-01-01T00:00:00Z"},
        {"until": "0001-01-01T00:00:00+23:59", "step_s": 31 * 86400, "windows": 500},
        {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59-23:59", "step_s": 1},
        {"since": "9999-12-31T23:59:59Z"},
    ],
)
def test_extreme_times_are_clamped_not_500(client, params):
    resp = client.get("/api/rates", params=params)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["points"]) <= 501
    page = client.get("/api/articles", params={k: v for k, v in params.items() if "s" in k[:1]})
    assert page.status_code == 200, page.text


def test_a_long_range_keeps_the_newest_windows(client):
    r = client.get(
        "/api/rates",
        params={"since": "2000-01-01T00:00:00Z", "until": "2026-01-05T12:20:00Z", "step_s": 300},
    ).json()
    assert len(r["points"]) == 500 and r["points"][-1]["end"] == "2026-01-05T12:20:00Z"
    assert sum(p["total"] for p in r["points"]) == 400  # the whole fed history is in range


def test_a_bad_silence_says_why_without_pydantic_noise(client):
    resp = client.post(
        "/api/silences",
        json={
            "key": "x",
            "starts_at": "2026-01-05T10:00:00Z",
            "ends_at": "2026-01-05T09:00:00Z",
        },
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "body: a silence must end after it starts"
    bad_regex = client.post("/api/silences", json={"matchers": ["key=~(a)\\1"], "duration_s": 60})
    assert bad_regex.status_code == 400 and "invalid escape sequence" in bad_regex.json()["error"]


def test_options_lists_every_method_of_the_path(client):
    resp = client.options("/api/silences")
    assert resp.status_code == 405 and resp.headers["allow"] == "GET, POST"


def test_page_and_api_carry_security_headers(client):
    for path in ("/", "/api/health", "/static/app.js"):
        headers = client.get(path).headers
        assert headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path


def test_a_foreign_host_name_is_refused(services):
    """DNS rebinding: a hostile site's name pointed at 127.0.0.1 reaches no data."""
    with TestClient(create_app(services), base_url="http://evil.example:8080") as c:
        resp = c.get("/api/articles")
        assert resp.status_code == 421 and "evil.example" in resp.json()["error"]
    for name in ("http://localhost:8080", "http://[::1]:8080", LOCAL):
        with TestClient(create_app(services), base_url=name) as c:
            assert c.get("/api/health").status_code == 200, name
    services.api = ApiSettings(host="0.0.0.0", allowed_hosts=["finpulse.corp"], auth_token="x" * 16)
    with TestClient(create_app(services), base_url="http://finpulse.corp") as c:
        assert c.get("/api/health").status_code == 401  # past the host check, on to the token
    with TestClient(create_app(services), base_url=LOCAL) as c:
        assert c.get("/api/health").status_code == 421


@pytest.mark.parametrize("token", ["", " ", "\t\n"])
def test_a_blank_token_is_a_config_error(token, monkeypatch):
    with pytest.raises(ValidationError, match="auth_token is blank"):
        ApiSettings(auth_token=token)
    monkeypatch.setenv("FINPULSE_API__AUTH_TOKEN", token)
    with pytest.raises(ConfigError, match=r"api\.auth_token: .*blank"):
        load_settings()


def test_a_500_keeps_the_connection_alive(services):
    """An unexpected error is a JSON 500 and the client's connection stays usable."""

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    services.store.search = broken
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="critical")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/articles")
        first = conn.getresponse()
        assert first.status == 500 and b"RuntimeError" in first.read()
        assert first.getheader("connection") != "close"
        sock = conn.sock
        conn.request("GET", "/api/health")
        second = conn.getresponse()
        assert second.status == 200 and second.read()
        assert conn.sock is sock  # the same TCP connection answered both
        conn.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_metrics_off_loopback_need_the_token():
    registry = CollectorRegistry()
    Counter("probe", "a metric to find", registry=registry).inc()
    token = "t" * 20
    port = free_port()
    api = ApiSettings(metrics_host="0.0.0.0", metrics_port=port, auth_token=token)
    with metrics_listener(api, registry):
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url, timeout=5).status_code == 401
        ok = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert ok.status_code == 200 and "probe_total 1.0" in ok.text


def test_serve_refuses_exposed_metrics_in_one_line(tmp_path):
    env = {**os.environ, "FINPULSE_API__METRICS_HOST": "0.0.0.0"}
    proc = subprocess.run(
        [sys.executable, "-m", "finpulse", "serve", "--port", str(free_port())],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "refusing to serve API metrics on 0.0.0.0:18002 without an auth token" in line


def test_an_elasticsearch_outage_on_a_read_is_503(services):
    elastic_transport = pytest.importorskip("elastic_transport")

    def down(*args, **kwargs):
        raise elastic_transport.ConnectionError("connection refused")

    def overloaded(*args, **kwargs):
        meta = elastic_transport.ApiResponseMeta(
            503, "1.1", elastic_transport.HttpHeaders(), 0.1, None
        )
        raise elastic_transport.ApiError("search_phase_execution_exception", meta, {})

    services.store.get, services.store.search = down, overloaded
    with TestClient(create_app(services), base_url=LOCAL) as c:
        for path in ("/api/articles/a1", "/api/articles"):
            resp = c.get(path)
            assert resp.status_code == 503 and "store unavailable" in resp.json()["error"], path
