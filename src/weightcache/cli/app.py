"""The ``weightcache`` Typer app, its shared options, and the error handling every command gets.

Exit codes: 0 success; 1 failure (an error, or a verify that found damage); 2 bad usage;
130 interrupted. Errors are one line on stderr; ``--debug`` adds the traceback. ``--json`` prints
exactly one JSON document on stdout whatever happens: the result, or ``{"error": {"type": ...,
"message": ...}}``. Commands live in their own modules (``commands.py`` for the core) and register
themselves with :func:`command`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperGroup

from .._version import __version__
from ..cache import WeightCache
from ..constants import ENV_HOME
from ..display import safe_display
from ..errors import StoreNotFoundError, WeightCacheError
from .render import print_error_json, stderr

# click's UsageError (bad usage, exit 2), from whichever click this typer uses: typer 0.2x vendors
# its own copy, older releases use the click package, so it is taken from typer's own BadParameter.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]


class _JsonErrorsGroup(TyperGroup):
    """The command group: under ``--json``, bad usage also prints the JSON error document."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; on bad usage with ``--json``, print the JSON error, then click's message."""
        # The command's arguments, not parsed yet (click < 8.2 calls the first part protected_args).
        protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
        wants_json = "--json" in [*protected, *ctx.args]
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            if wants_json:
                print_error_json("UsageError", exc.format_message())  # type: ignore[attr-defined]
            raise


app = typer.Typer(
    name="weightcache",
    cls=_JsonErrorsGroup,
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


def _print_version(value: bool) -> None:
    if value:
        print(f"weightcache {__version__}")
        raise typer.Exit()


@app.callback()
def _app_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Cache ML model weights on a persistent volume: fetched once, verified, crash-safe."""


class _SafeFormatter(logging.Formatter):
    """Log lines with escape sequences written out: a file name in a message must not drive the terminal."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line for ``record``, safe to print."""
        return safe_display(super().formatMessage(record))


def _configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_SafeFormatter("weightcache %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])


def command(name: str | None = None) -> Callable[[F], F]:
    """Register a CLI command whose errors become one line on stderr (and a JSON document under --json)."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            debug, json = bool(kwargs.get("debug")), bool(kwargs.get("json"))
            _configure_logging(debug)
            try:
                return function(*args, **kwargs)
            except (typer.Exit, typer.Abort, UsageError):
                raise  # outcomes already printed, or bad usage (reported by the group)
            except WeightCacheError as exc:
                if json:
                    print_error_json(type(exc).__name__, str(exc))
                if debug:
                    raise
                stderr.print(f"[red]error:[/] {escape(safe_display(str(exc)))}", highlight=False)
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                if json:
                    print_error_json("Interrupted", "interrupted")
                stderr.print("interrupted")
                raise typer.Exit(130) from None
            except Exception as exc:  # a bug: the traceback follows on stderr, but stdout stays one document
                if json:
                    print_error_json(type(exc).__name__, str(exc))
                raise

        app.command(name)(wrapper)
        return function

    return decorate


def open_cache(store: Path | None, *, must_exist: bool = False) -> WeightCache:
    """The cache a command works on (``--store``, else the default store).

    ``must_exist`` is for the commands that only read or remove: for them a store directory that is
    not there is a mistyped path, reported as such, and nothing is created.
    """
    cache = WeightCache(store)
    root = cache.store.layout.root
    if must_exist and not root.is_dir():
        problem = "is not a directory" if root.exists() else "does not exist"
        raise StoreNotFoundError(
            f"store {root} {problem}; check the path given to --store (or ${ENV_HOME}); nothing was created"
        )
    return cache


def main() -> None:
    """Entry point of the ``weightcache`` script."""
    app(prog_name="weightcache")
