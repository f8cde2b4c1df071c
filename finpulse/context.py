"""What every subcommand gets from the root ``finpulse`` command.

Kept apart from :mod:`finpulse.cli` so package CLIs can import it while the root imports them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from finpulse.settings import Settings, load_settings


class State:
    """The root options, handed to subcommands through the typer context."""

    def __init__(self, config: Path | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


def settings_from(ctx: typer.Context) -> Settings:
    """The effective settings for a subcommand (loaded once; errors are reported by main)."""
    return ctx.find_root().obj.settings
