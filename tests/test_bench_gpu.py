"""The GPU-loading benchmarks still run (on the CPU, quick): their numbers live in docs/gpu-loading.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_gpu_load_quick_on_cpu(tmp_path: Path) -> None:
    result = run_module(
        "bench.gpu_load",
        "--quick",
        "--device",
        "cpu",
        "--data-dir",
        str(tmp_path),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    rates = report["gb_per_s"]
    for row in ("raw parallel read (16 threads, preadv into memory)", "safetensors", "weightcache"):
        assert rates[row]["warm"][0] > 0 and rates[row]["cold"][0] > 0, row
    assert "GPU: none (CPU numbers)" in result.stdout
    assert "skipped runai" in result.stdout or "| runai" in result.stdout


def test_cold_start_on_cpu(tmp_path: Path) -> None:
    result = run_module(
        "bench.cold_start", "--sizes", "0.002", "--repeat", "1", "--import-seconds", "0",
        "--data-dir", str(tmp_path), "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]["0.002 GiB"]
    assert set(runs) == {"safetensors", "safetensors + prefetch", "weightcache", "weightcache + prefetch"}
    assert all(sample["ready"] >= sample["imported"] > 0 for samples in runs.values() for sample in samples)
    assert runs["weightcache + prefetch"][0]["prefetched_bytes"] > 0
