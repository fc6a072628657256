"""The example apps' own modules import with the ``examples`` extra, or their tests say how to get it."""

from __future__ import annotations

import importlib

import pytest

from .extras import INSTALL_LINE, MISSING_MODULES


def test_example_modules_import() -> None:
    if MISSING_MODULES:
        pytest.skip(f"the examples extra is not installed ({', '.join(MISSING_MODULES)}): {INSTALL_LINE}")
    for module in (
        "fashion_crop.pipeline",
        "fashion_crop.server",
        "fashion_crop.seed_api",
        "jaguar.pipeline",
        "jaguar.server",
        "jaguar.seed_api",
    ):
        importlib.import_module(f"examples.{module}")
