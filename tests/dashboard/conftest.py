"""Fixtures for the dashboard tests (helpers live in dashboard_helpers.py)."""

from __future__ import annotations

from uuid import uuid4

import pytest
from dashboard_helpers import feed, history
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.config import AlertsSettings
from alerts.engine import AlertEngine
from app.settings import Settings
from dashboard.app import create_app
from dashboard.config import ApiSettings
from dashboard.services import Services
from stream.sinks.sqlite import SqliteStore

LOCAL = "http://127.0.0.1"  # a Host the API answers to (it refuses names it is not known by)


def make_settings(tmp_path, **api) -> tuple[Settings, ApiSettings]:
    settings = Settings(
        store={"sqlite_path": tmp_path / "finpulse.db"},
        alerts={"state_db": tmp_path / "alerts.db"},
        model={"registry_dir": tmp_path / "models"},
    )
    return settings, ApiSettings(feedback_path=tmp_path / "feedback.jsonl", **api)


@pytest.fixture
def engine(tmp_path) -> AlertEngine:
    engine = AlertEngine.from_settings(
        AlertsSettings(state_db=tmp_path / "alerts.db"), registry=CollectorRegistry()
    )
    yield engine
    engine.close()


def open_backend(backend: str, settings: Settings):
    """A fresh store of ``backend``; Elasticsearch gets an index of its own."""
    if backend == "sqlite":
        return SqliteStore(settings.store.sqlite_path)
    from stream.sinks.elasticsearch import ElasticsearchStore

    return ElasticsearchStore(settings.elasticsearch, index=f"finpulse-test-dash-{uuid4().hex}")


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.integration)])
def services(request, tmp_path, engine) -> Services:
    """The API's backends over a fed history: every API test runs on both stores."""
    settings, api = make_settings(tmp_path)
    store = open_backend(request.param, settings)
    feed(history(), store, engine)
    if request.param == "elasticsearch":
        store.refresh()  # make the writes searchable now, not within a second
    services = Services.from_settings(settings, api, store=store, alerts=engine.store)
    yield services
    if request.param == "elasticsearch":
        store.es.indices.delete(index=store.index_name)
    store.close()


@pytest.fixture
def client(services) -> TestClient:
    with TestClient(create_app(services), base_url=LOCAL) as c:
        yield c
