"""The ``weightcache`` Typer app, its global options, and the error handling every command gets.

Exit codes: 0 success; 1 failure (an error, or a verify that found damage); 2 bad usage;
130 interrupted. Errors are one line on stderr; ``--debug`` adds the traceback. ``--json`` prints
exactly one JSON document on stdout whatever happens: the result, or ``{"error": {"type": ...,
"message": ...}}``.

``--store``, ``--json`` and ``--debug`` are global options, taken by the app's callback and read
by commands through :func:`options`. They may also follow the command (``weightcache ls --store
X``): :class:`_CliGroup` moves them in front of it before parsing. Commands live in their own
modules and are wrapped by :func:`command`; ``weightcache.cli`` registers them from one list.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperGroup

from .._core.constants import ENV_HOME
from .._core.display import safe_display
from .._version import __version__
from ..cache import WeightCache
from ..errors import StoreNotFoundError, WeightCacheError
from .render import print_error_json, stderr

# click's UsageError (bad usage, exit 2), from whichever click this typer uses: typer 0.2x vendors
# its own copy, older releases use the click package, so it is taken from typer's own BadParameter.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]


#: The global options, each with whether it takes a value.
_GLOBAL_OPTIONS = {"--store": True, "--json": False, "--debug": False}


def _globals_first(args: list[str]) -> list[str]:
    """``args`` with the global options moved in front of the command, so they may follow it too.

    Nothing after ``--`` moves: there every word is an argument.
    """
    front: list[str] = []
    rest: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--":
            rest += [word, *words]
            break
        name = word.split("=", 1)[0]
        if name not in _GLOBAL_OPTIONS:
            rest.append(word)
        elif _GLOBAL_OPTIONS[name] and "=" not in word:
            value = next(words, None)
            if value is None:
                raise UsageError(f"Option '{name}' requires an argument.")
            front += [word, value]
        else:
            front.append(word)
    return front + rest


class _CliGroup(TyperGroup):
    """The command group: global options anywhere, and under ``--json`` bad usage as a JSON document."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Parse the global options wherever they stand; print bad usage as JSON under ``--json``."""
        ctx.meta["weightcache.json"] = "--json" in args[: args.index("--") if "--" in args else len(args)]
        with _usage_as_json(ctx):
            return super().parse_args(ctx, _globals_first(args))  # type: ignore[no-any-return]

    def invoke(self, ctx: Any) -> Any:
        """Run the command; on bad usage with ``--json``, print the JSON error, then click's message."""
        with _usage_as_json(ctx):
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_as_json(ctx: Any) -> Iterator[None]:
    """Print click's usage error as the JSON error document too when ``--json`` was given."""
    try:
        yield
    except UsageError as exc:
        if ctx.meta.get("weightcache.json"):
            print_error_json("UsageError", exc.format_message())  # type: ignore[attr-defined]
        raise


app = typer.Typer(
    name="weightcache",
    cls=_CliGroup,
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


@dataclass(frozen=True)
class CliOptions:
    """The global options of one CLI run."""

    store: Path | None = None
    json: bool = False
    debug: bool = False


ModalVolumeOpt = Annotated[
    str | None, typer.Option("--modal-volume", help="Work on this Modal Volume, not the local store.")
]

F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        print(f"weightcache {__version__}")
        raise typer.Exit()


#: Set by the app's callback before each command runs (a click context would do, but typer may
#: vendor its own click, whose current context the ``click`` package cannot see).
_options: ContextVar[CliOptions] = ContextVar("weightcache_cli_options", default=CliOptions())  # noqa: B039  (frozen)


@app.callback()
def _app_options(
    store: StoreOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Cache ML model weights on a persistent volume: fetched once, verified, crash-safe.

    --store, --json and --debug may also follow the command.
    """
    _options.set(CliOptions(store=store, json=json, debug=debug))
    _configure_logging(debug)


def options() -> CliOptions:
    """The global options of the running command (defaults outside a CLI run)."""
    return _options.get()


class _SafeFormatter(logging.Formatter):
    """Log lines with escape sequences written out: a file name in a message must not drive the terminal."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line for ``record``, safe to print."""
        return safe_display(super().formatMessage(record))


def _configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_SafeFormatter("weightcache %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])


def command(function: F) -> F:
    """Wrap a CLI command so its errors become one line on stderr (and a JSON document under --json).

    It registers nothing: ``weightcache.cli`` lists the commands.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug, json = options().debug, options().json
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

    return wrapper  # type: ignore[return-value]


def open_cache(*, must_exist: bool = False) -> WeightCache:
    """The cache a command works on (``--store``, else the default store).

    ``must_exist`` is for the commands that only read or remove: for them a store directory that is
    not there is a mistyped path, reported as such, and nothing is created.
    """
    cache = WeightCache(options().store)
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
