"""What every request and response of the API passes through, outermost first.

- Security headers: the page may only load its own scripts, styles and data, and may not be
  framed (clickjacking); browsers must not sniff types or send referrers elsewhere.
- Host check: a browser on this machine visiting a hostile site whose DNS name is later
  pointed at 127.0.0.1 (DNS rebinding) sends that site's name as ``Host``; only the names
  this server is known by are answered.
- Bearer token on ``/api`` when one is configured.
- Crash guard: an unexpected error becomes a JSON 500 *response* here, so the server never
  sees an exception and keeps the client's keep-alive connection open.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dashboard.config import ApiSettings

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Swagger UI and ReDoc come from FastAPI's CDN defaults and inline scripts: no CSP there.
UNSHIELDED = ("/docs", "/redoc")


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def allowed_hosts(api: ApiSettings) -> frozenset[str] | None:
    """Host names to answer; ``None`` (any) when bound to every interface with none listed."""
    if api.allowed_hosts:
        return frozenset(h.lower().strip("[]") for h in api.allowed_hosts)
    if api.host in WILDCARDS:
        return None
    return LOOPBACK_NAMES | {api.host.lower().strip("[]")}


def install(app: FastAPI, api: ApiSettings) -> None:
    """Add the guards; call after the app's own middleware so these wrap it."""
    _crash_guard(app)
    if api.auth_token is not None:
        _bearer(app, api.auth_token.get_secret_value())
    hosts = allowed_hosts(api)
    if hosts is not None:
        _host_check(app, hosts)
    _headers(app)


def _crash_guard(app: FastAPI) -> None:
    @app.middleware("http")
    async def crash_guard(request: Request, call_next):  # noqa: ANN001 - starlette hook
        try:
            return await call_next(request)
        except Exception as exc:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return error(500, f"internal error ({type(exc).__name__}); see the server log")


def _bearer(app: FastAPI, token: str) -> None:
    expected = f"Bearer {token}".encode()

    @app.middleware("http")
    async def bearer(request: Request, call_next):  # noqa: ANN001 - starlette hook
        if request.url.path.startswith("/api"):
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return await call_next(request)


def _host_check(app: FastAPI, hosts: frozenset[str]) -> None:
    @app.middleware("http")
    async def host_check(request: Request, call_next):  # noqa: ANN001 - starlette hook
        name = (request.url.hostname or "").lower().strip("[]")
        if name not in hosts:
            return error(
                421,
                f"this server does not answer to host {name!r}; add it to api.allowed_hosts "
                "if that is a name of this machine",
            )
        return await call_next(request)


def _headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # noqa: ANN001 - starlette hook
        response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if not request.url.path.startswith(UNSHIELDED):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response
