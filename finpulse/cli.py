"""The ``finpulse`` command: one entry point, each role a subcommand.

Packages contribute their commands through a ``register(app)`` function so this module only
wires them together and owns the shared ``--config`` option (see :mod:`finpulse.context`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from finpulse import __version__
from finpulse.context import State, settings_from
from finpulse.settings import ConfigError, to_toml

app = typer.Typer(
    name="finpulse",
    help="Streaming monitor of financial news: topic and sentiment scoring, spike alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"finpulse {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML config file (default: $FINPULSE_CONFIG, else ./finpulse.toml if present).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    ctx.obj = State(config)


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective configuration as TOML, secrets masked."""
    typer.echo(to_toml(settings_from(ctx)), nl=False)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
