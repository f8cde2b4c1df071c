"""``finpulse serve`` (the dashboard and API) and ``finpulse demo`` (all of it, replayed)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry
from rich.console import Console

from finpulse.context import settings_from

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``demo`` to the root ``finpulse`` app."""
    app.command("serve")(serve)
    app.command("demo")(demo)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address (default api.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default api.port, 8080).")] = None,
) -> None:
    """Serve the dashboard and JSON API over the configured store and alert state."""
    from dashboard.app import create_app
    from dashboard.metrics import ApiMetrics
    from dashboard.server import BindRefused, check_bind, metrics_listener
    from dashboard.server import serve as serve_app
    from dashboard.services import Services

    settings = settings_from(ctx)
    api = settings.api.model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    try:
        check_bind(api)
    except BindRefused as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)  # one line, however long
        raise typer.Exit(2) from None
    services = Services.from_settings(settings, api)
    registry = CollectorRegistry()
    app = create_app(services, ApiMetrics(registry))
    console.print(f"finpulse dashboard on http://{api.host}:{api.port} "
                  f"({settings.store.backend} store); Ctrl-C stops")  # fmt: skip

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_app(app, api, stop)

    try:
        with metrics_listener(api, registry):
            asyncio.run(run())
    except OSError as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)  # one line, however long
        raise typer.Exit(1) from None
    finally:
        services.close()
    console.print("stopped")


def demo(ctx: typer.Context) -> None:
    """Replay real labelled news with a negative episode through the champion; open the page."""
    from dashboard.demo import main
    from dashboard.server import BindRefused

    settings = settings_from(ctx)
    try:
        main(settings, settings.api, console)
    except (BindRefused, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)  # one line, however long
        raise typer.Exit(1) from None
