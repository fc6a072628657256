"""The reliability suite's markers (its fixtures come from the top-level conftest)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register ``crash``: the SIGKILL trials (``WEIGHTCACHE_CRASH_TRIALS=500 pytest -m crash``)."""
    config.addinivalue_line(
        "markers", "crash: SIGKILL fault injection; WEIGHTCACHE_CRASH_TRIALS sets how many"
    )
