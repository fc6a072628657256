"""``python -m bench --quick`` runs end to end and writes a complete report (its structure, not timings)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from bench.cases import CASES

ROOT = Path(__file__).resolve().parents[1]
NOT_INSTALLED = "not installed (pip install -e '.[bench]')"


def _quick_run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    output = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--output",
            str(output),
            "--data-dir",
            str(tmp_path / "data"),
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return output.read_text(), done.stdout


def test_quick_run_writes_every_section_and_cleans_up(tmp_path: Path) -> None:
    committed = (
        (ROOT / "docs" / "benchmarks.md").read_bytes() if (ROOT / "docs" / "benchmarks.md").exists() else None
    )
    report, stdout = _quick_run(tmp_path)
    for heading in ["# Benchmarks", "## Machine", "## Goals", "## Reproducing"]:
        assert heading in report
    for case in CASES:
        assert f"## {case.number}. {case.title}" in report
        assert f"{case.number}. {case.title}:" in stdout  # its table was printed
    assert "(tiny data, one run each: not a measurement)" in report
    goal_rows = report.split("## Goals")[1].split("\n## ")[0]
    assert "| met |" in goal_rows or "| not met |" in goal_rows
    pooch_installed = importlib.util.find_spec("pooch") is not None
    assert (NOT_INSTALLED in report) != pooch_installed
    assert not any((tmp_path / "data").iterdir()), "the run left its test data behind"
    if committed is not None:
        assert (ROOT / "docs" / "benchmarks.md").read_bytes() == committed


def test_a_missing_peer_is_reported_not_fatal(tmp_path: Path) -> None:
    hidden = tmp_path / "hide"
    hidden.mkdir()
    (hidden / "pooch.py").write_text("raise ImportError('hidden by the test')\n")
    # In front of the path the run would have used, so only pooch is hidden.
    path = os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))
    report, _ = _quick_run(tmp_path, "--cases", "1,4,5", env={"PYTHONPATH": path})
    assert "## 1. Warm check" in report and "## 4. URL download" in report and "## 5. Deep verify" in report
    assert "## 2." not in report
    assert f"pooch retrieve(known_hash=sha256) of each file | {NOT_INSTALLED}" in report
    assert f"pooch retrieve(known_hash=sha256): requests, one stream | 1 | {NOT_INSTALLED}" in report
    assert f"pooch retrieve(known_hash=sha256) of each file | 1 | {NOT_INSTALLED}" in report
