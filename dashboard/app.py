"""The JSON API behind the dashboard page, and the page itself.

Routes are plain ``def`` functions: the store and alert state are synchronous, so FastAPI
runs them in its thread pool. Every error leaves as ``{"error": message}``; every bound on
a parameter is declared in the OpenAPI document, so no valid request meets a 4xx and no
value, however extreme, reaches a 500. The routes live in ``dashboard.routes`` (one module
per area), the error handlers in ``dashboard.errors``, the request guards in
``dashboard.guards``.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from dashboard import errors, guards, routes, schemas
from dashboard.events import EventStream
from dashboard.metrics import ApiMetrics, measure
from dashboard.services import Services
from finpulse import __version__

ERRORS = {code: {"model": schemas.ErrorBody} for code in (400, 401, 404, 421, 422, 500, 503)}


def create_app(services: Services, metrics: ApiMetrics | None = None) -> FastAPI:
    """The API over ``services``; the caller owns them (and closes them)."""
    app = FastAPI(
        title="finpulse",
        version=__version__,
        description="Scored financial news, negative-rate series, alerts and label feedback.",
        responses=ERRORS,
    )
    app.state.services = services
    app.state.events = EventStream(services)
    errors.install(app)
    measure(app, metrics or ApiMetrics(CollectorRegistry()))
    guards.install(app, services.api)
    routes.include(app, services)
    return app
