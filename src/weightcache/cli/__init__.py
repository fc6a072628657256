"""The ``weightcache`` command line (typer + rich)."""

from . import commands, modal_commands  # noqa: F401  (registers the commands)
from .app import app, main

__all__ = ["app", "main"]
