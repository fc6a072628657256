"""The ``weightcache`` command line (typer + rich)."""

from .app import app, main

__all__ = ["app", "main"]
