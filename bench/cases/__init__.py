"""The benchmark cases, numbered as in the issue; adding one is a module here and a line in ``CASES``."""

from __future__ import annotations

from ..harness import Case
from . import deep_verify, herd, memory, populate, url_download, warm_check

CASES: list[Case] = [
    warm_check.CASE,
    populate.CASE,
    herd.CASE,
    url_download.CASE,
    deep_verify.CASE,
    memory.CASE,
]

#: What the issue asks for that this harness cannot measure yet, and why (shown in the report).
NOT_YET: list[str] = [
    "7. GPU load: measured by the GPU loader's own `bench/gpu_load.py` (issue 5), not merged yet.",
]
