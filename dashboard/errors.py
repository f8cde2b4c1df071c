"""How the API's errors leave: always ``{"error": message}``, with the right status.

A value outside the schema is 422 naming the field, a rule spanning fields (a
``ValueError``) 400, a store that cannot answer 503, and a 405 names every method the path
serves in ``Allow``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from dashboard.guards import error as _error
from stream.sinks import StoreUnavailable

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every failure into a JSON error."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return _error(exc.status_code, str(exc.detail), headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _problems(exc.errors()))

    @app.exception_handler(ValidationError)
    async def invalid_value(request: Request, exc: ValidationError) -> JSONResponse:
        return _error(400, _problems(exc.errors()))

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return _error(503, f"store unavailable: {exc}")

    _elasticsearch_errors(app)


def _elasticsearch_errors(app: FastAPI) -> None:
    """Elasticsearch unreachable, overloaded or failing on a read is 503 (retry later), as
    StoreUnavailable is; only a request Elasticsearch refuses as malformed stays a 500."""
    try:
        from elastic_transport import ApiError, TransportError
    except ImportError:  # no [stream] extra: no Elasticsearch store either
        return

    @app.exception_handler(TransportError)
    async def unreachable(request: Request, exc: TransportError) -> JSONResponse:
        return _error(503, f"store unavailable: {exc}")

    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> JSONResponse:
        if exc.meta.status == 429 or exc.meta.status >= 500:
            return _error(503, f"store unavailable: {exc}")
        log.error("elasticsearch refused a request on %s: %s", request.url.path, exc)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")


def _problems(errors: Sequence[Any]) -> str:
    """Pydantic errors as one line: ``field: message; ...``."""
    problems = []
    for e in errors:
        where = ".".join(str(p) for p in e["loc"] if p != "body") or "body"
        problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))
