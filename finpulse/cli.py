"""Transitional: the root command moved to :mod:`app.cli` (issue 19)."""

from app.cli import app, main  # noqa: F401
