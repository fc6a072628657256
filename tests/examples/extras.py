"""Which of the ``examples`` extra's modules are missing here, and the line that installs them."""

from __future__ import annotations

import importlib.util

EXTRA_MODULES = (
    "torch",
    "transformers",
    "diffusers",
    "accelerate",
    "fastapi",
    "multipart",
    "PIL",
    "httpx",
    "uvicorn",
)
MISSING_MODULES = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
INSTALL_LINE = "pip install torch==2.13.0 -e '.[test,examples]'"
