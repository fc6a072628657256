"""The ``weightcache`` Typer app, its shared options, and the error handling every command gets.

Exit codes: 0 success; 1 failure (an error, or a verify that found damage); 2 bad usage.
Errors are one line on stderr; ``--debug`` adds the traceback. ``--json`` prints one JSON
document on stdout. Commands live in their own modules (``commands.py`` for the core) and
register themselves with :func:`command`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from ..cache import WeightCache
from ..constants import ENV_HOME
from ..errors import WeightCacheError
from .render import stderr

app = typer.Typer(
    name="weightcache",
    help="Cache ML model weights on a persistent volume: fetched once, verified, crash-safe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help=f"Store directory (default: ${ENV_HOME}, else ~/.cache/weightcache).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]
ModalVolumeOpt = Annotated[
    str | None, typer.Option("--modal-volume", help="Work on this Modal Volume, not the local store.")
]

F = TypeVar("F", bound=Callable[..., Any])


def command(name: str | None = None) -> Callable[[F], F]:
    """Register a CLI command whose weightcache errors become one line on stderr and exit 1."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            debug = bool(kwargs.get("debug"))
            level = logging.DEBUG if debug else logging.WARNING
            logging.basicConfig(level=level, format="weightcache %(levelname)s: %(message)s")
            try:
                return function(*args, **kwargs)
            except WeightCacheError as exc:
                if debug:
                    raise
                stderr.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                stderr.print("interrupted")
                raise typer.Exit(130) from None

        app.command(name)(wrapper)
        return function

    return decorate


def open_cache(store: Path | None) -> WeightCache:
    """The cache a command works on (``--store``, else the default store)."""
    return WeightCache(store)


def main() -> None:
    """Entry point of the ``weightcache`` script."""
    app(prog_name="weightcache")
