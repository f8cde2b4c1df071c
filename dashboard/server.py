"""Serving the API inside an asyncio program: bind policy, metrics listener, clean stop.

Uvicorn normally owns Ctrl-C; here the caller does (the demo stops the pipeline, the
server and the stores in order), so the server never installs signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, make_wsgi_app

from dashboard.config import ApiSettings

log = logging.getLogger(__name__)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class BindRefused(ValueError):
    """Listening beyond this machine without an auth token."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("10.1.2.3"), is_loopback("example.com")
    (False, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


MIN_TOKEN_CHARS = 16


def check_bind(api: ApiSettings) -> None:
    """Refuse a non-loopback API or metrics address unless a real token protects it."""
    token = api.auth_token.get_secret_value().strip() if api.auth_token else ""
    listeners = [("the API", api.host, api.port)]
    if api.metrics_port:
        listeners.append(("API metrics", api.metrics_host, api.metrics_port))
    for what, host, port in listeners:
        if not is_loopback(host) and len(token) < MIN_TOKEN_CHARS:
            have = "a token this short" if token else "an auth token"
            raise BindRefused(
                f"refusing to serve {what} on {host}:{port} without {have}: set "
                f"api.auth_token (FINPULSE_API__AUTH_TOKEN, at least {MIN_TOKEN_CHARS} "
                "characters) or bind 127.0.0.1"
            )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller handles Ctrl-C and sets should_exit


def _guarded(app: Callable[..., Any], token: str) -> Callable[..., Any]:
    """The metrics WSGI app behind the API's bearer token (Prometheus: ``authorization``)."""
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not hmac.compare_digest(environ.get("HTTP_AUTHORIZATION", "").encode(), expected):
            start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer")])
            return [b"missing or wrong bearer token\n"]
        return app(environ, start_response)

    return guarded


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def metrics_listener(api: ApiSettings, registry: CollectorRegistry) -> Iterator[None]:
    """Prometheus metrics on ``api.metrics_port`` (0 = off) for as long as the block runs.

    Off loopback a scrape must carry the API token (``check_bind`` insists on one).
    """
    if not api.metrics_port:
        yield
        return
    check_bind(api)
    app = make_wsgi_app(registry)
    if not is_loopback(api.metrics_host) and api.auth_token is not None:
        app = _guarded(app, api.auth_token.get_secret_value())
    server_class = ThreadingWSGIServer
    if ":" in api.metrics_host:  # an IPv6 address
        server_class = type("ThreadingWSGIServer6", (ThreadingWSGIServer,), {
            "address_family": socket.AF_INET6})  # fmt: skip
    server = make_server(
        api.metrics_host.strip("[]"), api.metrics_port, app, server_class,
        handler_class=_QuietHandler,
    )  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="api-metrics")
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def serve(app: FastAPI, api: ApiSettings, stop: asyncio.Event) -> None:
    """Run the HTTP server until ``stop`` is set; open event streams are ended first."""
    check_bind(api)
    config = uvicorn.Config(
        app,
        host=api.host,
        port=api.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # a bind error (port in use) surfaces here
            if not server.started:
                raise OSError(f"could not listen on {api.host}:{api.port}")
    finally:
        app.state.events.stop()
        server.should_exit = True
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
