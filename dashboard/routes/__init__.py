"""The API's routes, one module per area; :func:`include` adds them all in a fixed order.

To add an endpoint, add it to its area's module (or a new module listed here); the
OpenAPI document lists paths in this order.
"""

from __future__ import annotations

from fastapi import FastAPI

from dashboard.routes import alerts, articles, events, feedback, page, rates, service, silences
from dashboard.services import Services


def include(app: FastAPI, services: Services) -> None:
    """Every API route over ``services``, then the page and its static files."""
    for area in (service, articles, rates, alerts, silences, feedback):
        area.add_routes(app, services)
    events.add_routes(app)
    page.add_routes(app)
