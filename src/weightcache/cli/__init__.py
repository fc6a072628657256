"""The ``weightcache`` command line (typer + rich)."""

from . import commands, prefetch_commands  # noqa: F401  (registers the commands)
from .app import app, main

__all__ = ["app", "main"]
