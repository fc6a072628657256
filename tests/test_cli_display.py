"""B13: names holding escape sequences (from the Hub, an archive or a directory) never reach the terminal
as escape sequences: not through verify, ls, error lines, nor the library's "damaged" warning."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from weightcache import WeightCache
from weightcache._core.display import human_bytes, plural, safe_display
from weightcache.cli.listing import print_entries

# An OSC that retitles the terminal, and a CSI that clears the screen.
HOSTILE = "evil\x1b]0;owned\x07\x1b[2J.bin"
ESC = "\x1b"


def test_safe_display_writes_out_what_a_terminal_would_act_on() -> None:
    assert safe_display(HOSTILE) == "evil\\x1b]0;owned\\x07\\x1b[2J.bin"
    assert safe_display("modèle/poids.safetensors") == "modèle/poids.safetensors"
    assert safe_display("a\tb\nc\u202ed\x9b") == "a\\x09b\\x0ac\\u202ed\\x9b"  # tab, newline, bidi, C1 CSI
    assert safe_display("bad-\udcff-byte") == "bad-\\udcff-byte"  # os.fsdecode of an undecodable byte


def test_sizes_and_counts() -> None:
    assert human_bytes(300_000_000) == "286.1 MiB" and human_bytes(512) == "512 B"
    assert plural(1, "file") == "1 file" and plural(2, "entry", "entries") == "2 entries"


def damage(entry_path: Path, name: str) -> None:
    victim = entry_path / name
    victim.chmod(0o644)  # entry files may be published read-only
    victim.write_bytes(b"short")


@pytest.fixture
def hostile_entry(store_dir: Path, make_image_dir):
    source = make_image_dir({HOSTILE: os.urandom(4096), "config.json": b"{}"}, name=f"weights{ESC}[31m")
    return source, WeightCache(store_dir).ensure(source)


def test_verify_shows_a_hostile_name_escaped(store_dir: Path, hostile_entry) -> None:
    _, entry = hostile_entry
    damage(entry.path, HOSTILE)
    # A real process, with a terminal wide enough that no column wraps: the table holds the
    # source's path, as long as pytest's tmp dir (COLUMNS is read when the process starts).
    result = subprocess.run(
        [sys.executable, "-m", "weightcache", "verify", "--store", str(store_dir)],
        capture_output=True,
        text=True,
        check=False,
        errors="surrogateescape",
        env={**os.environ, "COLUMNS": "1000"},
    )
    assert result.returncode == 1, result.stderr
    assert ESC not in result.stdout and "\x07" not in result.stdout
    assert "evil\\x1b]0;owned\\x07\\x1b[2J.bin" in result.stdout


def test_ls_shows_a_hostile_source_escaped(cli, store_dir: Path, hostile_entry) -> None:
    _, entry = hostile_entry
    piped = cli("ls", "--store", store_dir).stdout
    assert ESC not in piped and "weights\\x1b[31m" in piped
    out = io.StringIO()
    print_entries(Console(file=out, width=200, force_terminal=True, color_system=None), [entry])
    assert ESC not in out.getvalue() and "weights\\x1b[31m" in out.getvalue()


def test_an_error_line_shows_a_hostile_path_escaped(cli, store_dir: Path, tmp_path: Path) -> None:
    result = cli("ensure", str(tmp_path / HOSTILE), "--store", store_dir)
    assert result.exit_code == 1 and ESC not in result.stderr and "\\x1b" in result.stderr


def test_the_damaged_warning_shows_a_hostile_name_escaped(
    hostile_entry, store_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, entry = hostile_entry
    damage(entry.path, HOSTILE)
    with caplog.at_level(logging.WARNING, logger="weightcache"):
        WeightCache(store_dir).ensure(source)
    [warning] = [record.getMessage() for record in caplog.records if "damaged" in record.getMessage()]
    assert ESC not in warning and "evil\\x1b]0;owned" in warning


def test_the_cli_prints_the_damaged_warning_escaped(store_dir: Path, hostile_entry) -> None:
    source, entry = hostile_entry
    damage(entry.path, HOSTILE)
    result = subprocess.run(
        [sys.executable, "-m", "weightcache", "ensure", str(source), "--store", str(store_dir)],
        capture_output=True,
        text=True,
        check=False,
        errors="surrogateescape",
    )
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stderr and ESC not in result.stderr + result.stdout
