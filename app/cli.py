"""The ``finpulse`` command: one entry point, each role a subcommand.

Packages contribute their commands through a ``register(app)`` function so this module only
wires them together and owns the shared ``--config`` option: it hands
:func:`app.settings.load_settings` to :class:`finpulse.context.State`, from which every
subcommand reads the settings, so no package imports this module or the assembled settings.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Annotated

import typer

from alerts.cli import register as register_alerts
from app.settings import ConfigError, load_settings, to_toml
from dashboard.cli import register as register_dashboard
from finpulse import __version__
from finpulse.context import State, settings_from
from ingest.cli import register as register_ingest
from model.cli import bench_score
from model.cli import register as register_model
from stream.cli import bench_faults, bench_pipeline
from stream.cli import register as register_stream

app = typer.Typer(
    name="finpulse",
    help="Streaming monitor of financial news: topic and sentiment scoring, spike alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
bench_app = typer.Typer(help="Benchmarks that print JSON.", no_args_is_help=True)


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
    ctx.obj = State(config, load_settings)


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective configuration as TOML, secrets masked."""
    typer.echo(to_toml(settings_from(ctx)), nl=False)


for register in (
    register_ingest,
    register_model,
    register_stream,
    register_alerts,
    register_dashboard,
):
    register(app)
app.add_typer(bench_app, name="bench")
bench_app.command("score")(bench_score)
bench_app.command("pipeline")(bench_pipeline)
bench_app.command("faults")(bench_faults)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except sqlite3.DatabaseError as exc:  # a damaged state file, wherever it was opened
        message = str(exc)
        if "move it aside" not in message:  # the alert store names its file; others do not
            message = (
                f"a SQLite state file is unreadable ({exc}): move the damaged one aside "
                "(store.sqlite_path, alerts.state_db) and start again"
            )
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        sys.exit(2)
