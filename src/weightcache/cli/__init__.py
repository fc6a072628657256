"""The ``weightcache`` command line (typer + rich)."""

from . import (
    adopt_commands,  # noqa: F401  (registers adopt-hf-cache)
    commands,  # noqa: F401  (registers the core commands)
    modal_commands,  # noqa: F401  (registers push, pull, export, import)
    prefetch_commands,  # noqa: F401  (registers prefetch)
    selftest_command,  # noqa: F401  (registers selftest)
    source_commands,  # noqa: F401  (registers outdated)
)
from .app import app, main

__all__ = ["app", "main"]
