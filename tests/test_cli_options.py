"""The CLI's global options (--store, --json, --debug) before or after the command; its command list."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from weightcache.cli import COMMANDS
from weightcache.cli.app import _globals_first


def test_store_and_json_work_before_and_after_the_command(cli, tmp_path: Path, make_image_dir) -> None:
    store = tmp_path / "store"
    key = json.loads(cli("ensure", make_image_dir(), "--store", store, "--json").stdout)["key"]
    for args in (
        ["--store", store, "--json", "ls"],
        ["ls", "--store", store, "--json"],
        ["--json", "ls", f"--store={store}"],
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert [entry["key"] for entry in json.loads(result.stdout)] == [key]


def test_words_after_double_dash_stay_arguments() -> None:
    args = ["verify", "--store", "/s", "--deep", "--", "--json"]
    assert _globals_first(args) == ["--store", "/s", "verify", "--deep", "--", "--json"]


def test_a_store_option_without_its_value_is_bad_usage_in_json(cli) -> None:
    result = cli("ls", "--json", "--store")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == {
        "type": "UsageError",
        "message": "Option '--store' requires an argument.",
    }


def test_help_lists_every_registered_command(cli) -> None:
    listed = cli("--help").stdout
    assert all(name in listed for name, _ in COMMANDS)
    assert "--store" in listed and "--json" in listed and "--debug" in listed
    assert "before or after the command: --store DIR, --json, --debug" in cli("ls", "--help").stdout


@pytest.mark.parametrize(
    "module",
    [
        "weightcache.cli.demo",
        "weightcache.testing",
        "weightcache._core.archive",
        "weightcache._hf_cache.adopt",
    ],
)
def test_the_cli_imports_a_commands_machinery_only_when_that_command_runs(module: str) -> None:
    code = f"import sys, weightcache.cli; print({module!r} in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "False"
