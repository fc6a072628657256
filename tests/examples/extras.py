"""Which of the ``examples`` extra's modules are missing here, the line that installs them, the device."""

from __future__ import annotations

import importlib.util
import os

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

#: Where the tests run the models: ``cpu`` (CI), or ``cuda`` on a GPU machine (EXAMPLES_DEVICE=cuda).
DEVICE = os.environ.get("EXAMPLES_DEVICE", "cpu")
#: The jaguar pipeline's dtype in the tests: float32 on the CPU (bf16 is slow there), bf16 on a GPU.
JAGUAR_DTYPE = "float32" if DEVICE == "cpu" else "bfloat16"
