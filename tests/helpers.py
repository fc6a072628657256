"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python process (real processes for concurrency and crash tests)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
