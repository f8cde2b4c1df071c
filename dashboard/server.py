"""Serving the API inside an asyncio program: bind policy, metrics listener, clean stop.

Uvicorn normally owns Ctrl-C; here the caller does (the demo stops the pipeline, the
server and the stores in order), so the server never installs signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, start_http_server

from dashboard.config import ApiSettings

log = logging.getLogger(__name__)


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


def check_bind(api: ApiSettings) -> None:
    """Refuse a non-loopback address unless a token protects the API."""
    token = api.auth_token.get_secret_value() if api.auth_token else ""
    if not is_loopback(api.host) and not token:
        raise BindRefused(
            f"refusing to listen on {api.host}:{api.port} without an auth token: set "
            "api.auth_token (FINPULSE_API__AUTH_TOKEN) or bind 127.0.0.1"
        )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller handles Ctrl-C and sets should_exit


@contextlib.contextmanager
def metrics_listener(api: ApiSettings, registry: CollectorRegistry) -> Iterator[None]:
    """Prometheus metrics on ``api.metrics_port`` (0 = off) for as long as the block runs."""
    if not api.metrics_port:
        yield
        return
    server, thread = start_http_server(api.metrics_port, api.metrics_host, registry)
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
