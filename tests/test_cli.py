"""The CLI: JSON output, human tables, exit codes 0/1/2, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_ensure_json(cli, store_dir: Path, make_image_dir) -> None:
    source = make_image_dir()
    cold = cli("ensure", source, "--store", store_dir, "--json")
    assert cold.exit_code == 0, cold.output
    first = json.loads(cold.stdout)
    assert first["hit"] is False and first["files"] == 3 and first["bytes"] == 800_012
    assert Path(first["path"]).is_dir() and first["key"]
    warm = json.loads(cli("ensure", f"dir://{source}", "--store", store_dir, "--json").stdout)
    assert warm["hit"] is True and warm["key"] == first["key"]


def test_ensure_links(cli, store_dir: Path, make_image_dir, tmp_path: Path) -> None:
    result = cli("ensure", make_image_dir(), "--store", store_dir, "--link", tmp_path / "w", "--mode", "copy")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "w" / "configs" / "sam2.yaml").read_bytes() == b"model: sam2\n"
    assert "linked (copy)" in result.stdout


def test_ls_status_verify_rm(cli, store_dir: Path, make_image_dir) -> None:
    source = make_image_dir()
    assert cli("status", source, "--store", store_dir).exit_code == 1  # not cached yet
    key = json.loads(cli("ensure", source, "--store", store_dir, "--json").stdout)["key"]
    listed = json.loads(cli("ls", "--store", store_dir, "--json").stdout)
    assert [item["key"] for item in listed] == [key]
    assert json.loads(cli("status", source, "--store", store_dir, "--json").stdout)["cached"] is True
    for target in (key, str(source)):
        verified = cli("verify", target, "--deep", "--store", store_dir, "--json")
        assert verified.exit_code == 0 and json.loads(verified.stdout)[0]["ok"] is True
    human = cli("ls", "--store", store_dir)
    assert key in human.stdout
    assert cli("rm", key, "--store", store_dir).exit_code == 0
    assert json.loads(cli("ls", "--store", store_dir, "--json").stdout) == []


def test_failed_verify_exits_1(cli, store_dir: Path, make_image_dir) -> None:
    key = json.loads(cli("ensure", make_image_dir(), "--store", store_dir, "--json").stdout)["key"]
    victim = store_dir / "entries" / key / "files" / "sam2_hiera_large.pt"
    data = bytearray(victim.read_bytes())
    data[0] ^= 1
    victim.write_bytes(bytes(data))
    assert cli("verify", "--store", store_dir).exit_code == 0  # stat cannot see it
    deep = cli("verify", "--deep", "--store", store_dir)
    assert deep.exit_code == 1 and "FAILED" in deep.stdout


def test_gc_dry_run_json(cli, store_dir: Path, make_image_dir) -> None:
    source = make_image_dir()
    cli("ensure", source, "--store", store_dir)
    (source / "extra.bin").write_bytes(b"1")
    cli("ensure", source, "--store", store_dir)
    report = json.loads(cli("gc", "--keep", "1", "--dry-run", "--store", store_dir, "--json").stdout)
    assert report["dry_run"] is True and len(report["removed"]) == 1
    assert len(json.loads(cli("ls", "--store", store_dir, "--json").stdout)) == 2


def test_errors_are_one_line_with_exit_1(cli, store_dir: Path, tmp_path: Path) -> None:
    for args in (["ensure", "ftp://host/x"], ["ensure", str(tmp_path / "missing")], ["rm", "no-such-key"]):
        result = cli(*args, "--store", store_dir)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.output


def test_bad_usage_exits_2(cli, store_dir: Path) -> None:
    assert cli("gc", "--keep", "0", "--store", store_dir).exit_code == 2
    assert cli("ensure", "/x", "--mode", "teleport", "--store", store_dir).exit_code == 2
    assert cli("no-such-command").exit_code == 2


def test_installed_script_runs_as_a_real_process(store_dir: Path, make_image_dir) -> None:
    script = Path(sys.executable).with_name("weightcache")
    result = subprocess.run(
        [str(script), "ensure", str(make_image_dir()), "--store", str(store_dir), "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hit"] is False
    failed = subprocess.run(
        [str(script), "ensure", "nope://x", "--store", str(store_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1 and failed.stderr.strip().startswith("error: unknown source scheme")


def test_demo_runs_and_tells_the_story(cli, tmp_path: Path) -> None:
    result = cli("demo", "--size-mb", "16", "--store", tmp_path / "demo-store", "--json")
    assert result.exit_code == 0, result.output
    steps = {step["name"]: step["outcome"] for step in json.loads(result.stdout)["steps"]}
    assert steps["cold ensure"] == "miss: populated" and steps["warm ensure"] == "hit"
    assert steps["populate killed (SIGKILL)"] == "killed"
    assert steps["corrupt one byte"] == "caught" and steps["ensure --repair"] == "repaired"
