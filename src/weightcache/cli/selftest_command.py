"""``weightcache selftest``: check what weightcache assumes of Modal's Volume and Dict.

Without ``--modal`` the conformance suite runs on the fakes in a temporary directory (what CI
checks); with ``--modal`` it runs as an ephemeral Modal app on a real Volume and Dict of the
account this machine's token belongs to, so a user can confirm the fakes match it.
"""

from __future__ import annotations

import tempfile
from typing import Annotated

import typer
from rich.table import Table

from ..testing.conformance import ASSUMPTIONS, FakeBackend, SuiteResult, run_suite
from .app import DebugOpt, JsonOpt, command
from .render import print_json, stderr, stdout

ModalOpt = Annotated[
    bool,
    typer.Option(
        "--modal", help="Run on a real Modal Volume and Dict (needs a Modal token; about a minute)."
    ),
]


@command()
def selftest(modal: ModalOpt = False, json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Check each Volume and Dict behaviour weightcache relies on; print pass/fail and latencies."""
    if modal:
        from ..testing.modal_selftest import run_on_modal

        stderr.print("running the selftest as an ephemeral Modal app (ephemeral Volume and Dict)")
        result = run_on_modal()
        where = "Modal"
    else:
        with tempfile.TemporaryDirectory(prefix="weightcache-selftest-") as scratch:
            result = run_suite(FakeBackend(scratch))
        where = "the fakes (FakeModalVolume, FakeModalDict)"
    if json:
        print_json(_document(result, where))
    else:
        stdout.print(_table(result, where))
        for name, seconds in result.latencies.items():
            stdout.print(f"{name}: {seconds * 1000:.1f} ms", highlight=False)
    if not result.passed:
        raise typer.Exit(1)


def _document(result: SuiteResult, where: str) -> dict[str, object]:
    return {
        "backend": where,
        "passed": result.passed,
        "assumptions": [
            {"name": o.assumption, "passed": o.passed, "detail": o.detail} for o in result.outcomes
        ],
        "latency_seconds": result.latencies,
    }


def _table(result: SuiteResult, where: str) -> Table:
    table = Table(title=f"weightcache's Modal assumptions, on {where}")
    for column in ("assumption", "result", "what was seen"):
        table.add_column(column)
    for outcome in result.outcomes:
        verdict = "[green]pass[/]" if outcome.passed else "[red]FAIL[/]"
        table.add_row(f"{outcome.assumption}: {ASSUMPTIONS[outcome.assumption]}", verdict, outcome.detail)
    return table
