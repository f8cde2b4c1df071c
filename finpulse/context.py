"""What every subcommand gets from the root ``finpulse`` command.

Package CLIs import this, never the root (:mod:`app.cli`), which imports them: the root hands
its settings loader to :class:`State`, so loading the assembled settings needs no import of
:mod:`app.settings` here (only its type, for the checker).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from app.settings import Settings


class State:
    """The root options, handed to subcommands through the typer context."""

    def __init__(self, config: Path | None, load: Callable[[Path | None], Settings]) -> None:
        self.config, self._load = config, load
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self._load(self.config)
        return self._settings


def settings_from(ctx: typer.Context) -> Settings:
    """The effective settings for a subcommand (loaded once; errors are reported by main)."""
    return ctx.find_root().obj.settings


def tool(name: str) -> ModuleType:
    """Import ``tools.<name>``; a worker image leaves the tools out, so say so in one line."""
    try:
        return importlib.import_module(f"tools.{name}")
    except ModuleNotFoundError as exc:
        if exc.name is None or not (exc.name == "tools" or exc.name.startswith("tools.")):
            raise
        typer.secho(
            f"error: tools.{name} is a developer tool and is not installed here; "
            "run it from a source checkout (pip install -e .)",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2) from None
