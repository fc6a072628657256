"""The CLI contract: one JSON document under --json whatever happens, --version, stores that must
exist, errors in words, listings that fit, choices in help, plurals, one unit family."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from weightcache import WeightCache, __version__
from weightcache._core.linking import LINK_MODES
from weightcache.cli.listing import print_entries, shorten_middle
from weightcache.cli.progress import RichProgress
from weightcache.progress import ProgressEvent


def only_json(stdout: str) -> object:
    """The one JSON document stdout holds (json.loads refuses anything before or after it)."""
    return json.loads(stdout)


@pytest.mark.parametrize(
    ("args", "code", "kind"),
    [
        (["ensure", "ftp://host/x"], 1, "UnknownSchemeError"),
        (["rm", "no-such-key"], 1, "EntryNotFoundError"),
        (["gc", "--keep", "0"], 2, "UsageError"),
        (["ensure", "/x", "--mode", "teleport"], 2, "UsageError"),
        (["ensure", "/x", "--no-such-option"], 2, "UsageError"),
    ],
)
def test_json_failures_print_one_error_document(
    cli, store_dir: Path, args: list[str], code: int, kind: str
) -> None:
    store_dir.mkdir()
    result = cli(*args, "--store", store_dir, "--json")
    assert result.exit_code == code, result.output
    error = only_json(result.stdout)["error"]
    assert error["type"] == kind and error["message"]
    assert result.stderr  # people still get their one line (or click's usage text) on stderr


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"weightcache {__version__}"


@pytest.mark.parametrize(
    "args",
    [["ls"], ["status", "dir:///tmp"], ["verify"], ["verify", "model-0123456789ab"], ["rm", "key"], ["gc"]],
)
def test_a_missing_store_is_an_error_and_is_not_created(cli, tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "stroe"
    result = cli(*args, "--store", typo)
    assert result.exit_code == 1, result.output
    assert f"store {typo} does not exist" in result.stderr
    assert not typo.exists()
    as_json = cli(*args, "--store", typo, "--json")
    assert only_json(as_json.stdout)["error"]["type"] == "StoreNotFoundError" and not typo.exists()


def test_a_store_that_is_a_file_is_an_error(cli, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = cli("ls", "--store", tmp_path / "file")
    assert result.exit_code == 1 and "not a directory" in result.stderr


def test_verify_an_unknown_key_says_there_is_no_such_entry(cli, store_dir: Path, make_image_dir) -> None:
    cli("ensure", make_image_dir(), "--store", store_dir)
    result = cli("verify", "initial-weights-0123456789ab", "--store", store_dir)
    assert result.exit_code == 1
    assert "no entry 'initial-weights-0123456789ab'" in result.stderr and "source" not in result.stderr


def test_verify_a_source_that_is_not_cached_says_so(cli, store_dir: Path, make_image_dir) -> None:
    store_dir.mkdir()
    result = cli("verify", make_image_dir(), "--store", store_dir)
    assert result.exit_code == 1 and "is not cached" in result.stderr


def test_status_of_an_uncached_repo_offline_answers_from_the_store(
    cli, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_dir.mkdir()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: the network is down
    human = cli("status", "hf://acme/tiny", "--store", store_dir)
    assert human.exit_code == 1 and "not cached" in human.stdout and not human.stderr
    report = only_json(cli("status", "hf://acme/tiny", "--store", store_dir, "--json").stdout)
    assert report["cached"] is False and report["version"] is None
    assert report["source"].startswith("hf://acme/tiny")


def test_verify_reports_a_stray_directory_in_words(cli, store_dir: Path, make_image_dir) -> None:
    cli("ensure", make_image_dir(), "--store", store_dir)
    (store_dir / "entries" / "stray").mkdir()
    (store_dir / "entries" / "notes.txt").write_text("mine")
    result = cli("verify", "--store", store_dir)
    assert result.exit_code == 1 and "Errno" not in result.stdout
    as_json = only_json(cli("verify", "--store", store_dir, "--json").stdout)
    reports = {report["key"]: report for report in as_json}
    assert "without manifest.json" in reports["stray"]["problems"][0]["detail"]
    assert "stray file" in reports["notes.txt"]["problems"][0]["detail"]
    single = only_json(cli("verify", "stray", "--store", store_dir, "--json").stdout)
    assert "without manifest.json" in single[0]["problems"][0]["detail"]


def test_ls_piped_prints_whole_values_tab_separated(cli, store_dir: Path, make_image_dir) -> None:
    source = make_image_dir(name="a-rather-long-directory-name-for-the-initial-weights")
    entry = WeightCache(store_dir).ensure(source)
    lines = cli("ls", "--store", store_dir).stdout.splitlines()
    assert lines[0].split("\t") == ["key", "source", "version", "files", "size", "created"]
    key, shown_source, version, files, size, created = lines[1].split("\t")
    assert key == entry.key and shown_source == entry.manifest.source and version == entry.version
    assert files == "3" and size == "781.3 KiB" and created.startswith(str(entry.manifest.created_at.year))


def render_ls(entries: list, width: int) -> list[str]:
    out = io.StringIO()
    print_entries(Console(file=out, width=width, force_terminal=True, color_system=None), entries)
    return out.getvalue().splitlines()


@pytest.mark.parametrize("name", ["initial_weights", "a-rather-long-directory-name-for-the-initial-weights"])
def test_ls_fits_80_columns_shortening_in_the_middle(store_dir: Path, make_image_dir, name: str) -> None:
    entry = WeightCache(store_dir).ensure(make_image_dir(name=name))
    lines = render_ls([entry], 80)
    assert lines and all(len(line) <= 80 for line in lines), lines
    assert any(entry.key in line.split() for line in lines)  # what rm and verify take: never shortened
    [source_line] = [line for line in lines if "dir:///" in line]
    source = entry.manifest.source
    assert f"{source[:9]}" in source_line and f"{source[-9:]} " in f"{source_line} " and "…" in source_line
    wide = "\n".join(render_ls([entry], 300))
    assert entry.manifest.source in wide and entry.version in wide


def test_shorten_middle_keeps_both_ends() -> None:
    assert shorten_middle("abcdefghij", 20) == "abcdefghij"
    assert shorten_middle("abcdefghij", 7) == "abc…hij"
    assert len(shorten_middle("x" * 100, 12)) == 12


def test_mode_is_a_choice_shown_in_help(cli) -> None:
    assert "|".join(LINK_MODES) == "symlink|hardlink|copy"
    assert "symlink|hardlink|copy" in cli("ensure", "--help").stdout


def test_counts_are_pluralised(cli, store_dir: Path, make_image_dir) -> None:
    result = cli("ensure", make_image_dir({"model.bin": b"x" * 2048}), "--store", store_dir)
    assert "1 file," in result.stdout and "2.0 KiB" in result.stdout


def test_progress_bars_use_binary_units() -> None:
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=True, color_system=None)
    with RichProgress(console) as progress:
        progress(ProgressEvent("plan", total_bytes=300_000_000, files=1))
        progress(ProgressEvent("advance", path="model.bin", nbytes=150_000_000, file_size=300_000_000))
        progress._progress.refresh()
        shown = out.getvalue()
    assert "286.1 MiB" in shown or "143.1/286.1 MiB" in shown, shown
    assert " MB" not in shown and "(1 file)" in shown


def test_demo_refuses_a_store_holding_entries(cli, store_dir: Path, make_image_dir) -> None:
    source = make_image_dir()
    cache = WeightCache(store_dir)
    first = cache.ensure(source)
    (source / "extra.bin").write_bytes(b"1")
    second = cache.ensure(source)
    before = {path: path.read_bytes() for path in store_dir.rglob("*") if path.is_file()}
    result = cli("demo", "--size-mb", "8", "--store", store_dir)
    assert result.exit_code == 1 and "already holds entries" in result.stderr
    assert sorted(entry.key for entry in cache.list()) == sorted([first.key, second.key])
    after = {path: path.read_bytes() for path in store_dir.rglob("*") if path.is_file()}
    assert after == before


def test_demo_in_an_empty_store_reports_sizes_in_binary_units(cli, tmp_path: Path) -> None:
    result = cli("demo", "--size-mb", "8", "--store", tmp_path / "empty", "--json")
    assert result.exit_code == 0, result.output
    steps = {step["name"]: step for step in only_json(result.stdout)["steps"]}
    assert steps["gc --keep 1"]["outcome"].endswith("MiB")
    assert "1 old version removed; 1 entry left" in steps["gc --keep 1"]["detail"]
