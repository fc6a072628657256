"""The benchmark cases, numbered as in the issue; adding one is a module here and a line in ``CASES``."""

from __future__ import annotations

from ..harness import Case
from . import deep_verify, memory, populate, warm_check

CASES: list[Case] = [warm_check.CASE, populate.CASE, deep_verify.CASE, memory.CASE]

#: What the issue asks for that this harness cannot measure yet, and why (shown in the report).
NOT_YET: list[str] = [
    "3. Herd (8 containers cold-starting on one Modal Volume): needs `ModalVolumeStore` and "
    "`FakeModalVolume` (issue 4), not merged yet.",
    "4. URL download (parallel ranges against a throttled server, a dropped connection): needs "
    "`URLSource` and the throttling test server (issue 3), not merged yet.",
    "6. Memory of populating from the Hub and from a URL: needs `HFSource` and `URLSource` (issue 3), "
    "not merged yet.",
    "7. GPU load: measured by the GPU loader's own `bench/gpu_load.py` (issue 5), not merged yet.",
]
