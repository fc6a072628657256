"""The benchmark cases, numbered as in the issue; adding one is a module here and a line in ``CASES``."""

from __future__ import annotations

from ..harness import Case
from . import deep_verify, herd, memory, peers, populate, url_download, warm_check, warm_start

CASES: list[Case] = [
    warm_check.CASE,
    populate.CASE,
    herd.CASE,
    url_download.CASE,
    deep_verify.CASE,
    memory.CASE,
    peers.CASE,
    warm_start.CASE,
]

#: What the issue asks for that this run does not measure, and where it is measured (shown in the report).
NOT_YET: list[str] = [
    "7. GPU load: needs a GPU, so it has its own harness, `python -m bench.gpu_load` (loaders side by "
    "side) and `python -m bench.cold_start` (a whole cold start); their numbers and how to run them "
    "are in [gpu-loading.md](gpu-loading.md).",
]
