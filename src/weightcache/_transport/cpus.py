"""How many CPUs this process may use, and a process-wide budget of reader threads.

``os.cpu_count()`` is the host's count: a container limited to 2 CPUs on a 64-core host would
start 64-thread pools. The usable count is the smaller of the CPUs the process may run on
(``os.sched_getaffinity``, which a cpuset limits) and the CPU time its cgroup may use per
period (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``, rounded up).

Prefetch and ``load_safetensors`` read at the same time (the prefetch runs in the background
while the loader starts), so their threads come out of one :data:`READ_BUDGET`: a default-sized
pool takes what the others have left, but never less than half the budget.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CGROUP = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")

#: Reader threads per usable CPU: a read mostly waits on the disk or the network, and a copy
#: from the page cache is CPU work, so a few per CPU keep both busy without thrashing.
READS_PER_CPU = 4

#: The most reader threads one process runs, however many CPUs it has (network volumes gain
#: little past this many concurrent reads).
MAX_READ_THREADS = 16


def usable_cpus(cgroup_root: Path = _CGROUP, proc_cgroup: Path = _PROC_CGROUP) -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota (at least 1)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    return max(1, min(affinity, math.ceil(quota)) if quota is not None else affinity)


def cgroup_cpu_quota(cgroup_root: Path = _CGROUP, proc_cgroup: Path = _PROC_CGROUP) -> float | None:
    """The CPUs' worth of time this process's cgroup may use, or ``None`` when it is unlimited.

    A limit set on any ancestor applies too, so the smallest along the path counts.
    """
    quotas = []
    for version, relative in _own_cgroups(proc_cgroup):
        bases = [cgroup_root] if version == "v2" else [cgroup_root / "cpu,cpuacct", cgroup_root / "cpu"]
        for base in bases:
            directory = base / relative.lstrip("/")
            for level in [directory, *directory.parents]:
                quota = _v2_quota(level / "cpu.max") if version == "v2" else _v1_quota(level)
                if quota is not None:
                    quotas.append(quota)
                if level == base:
                    break
    return min(quotas, default=None)


def default_read_threads(cpus: int | None = None) -> int:
    """Reader threads for this process: :data:`READS_PER_CPU` per usable CPU, at most 16."""
    return max(1, min(MAX_READ_THREADS, READS_PER_CPU * (cpus or usable_cpus())))


class ThreadBudget:
    """Reader threads shared by the pools of one process, so running together they do not oversubscribe."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self._lock = threading.Lock()

    @contextmanager
    def take(self, threads: int | None = None) -> Iterator[int]:
        """Hold threads for one pool: ``threads`` if given, else what the others leave, but at least
        half the budget (a load must not crawl on one thread behind a prefetch that is still running:
        together they stay within 1.5x the budget)."""
        with self._lock:
            share = max(self.total - self.in_use, self.total // 2)
            granted = max(1, threads if threads is not None else share)
            self.in_use += granted
        try:
            yield granted
        finally:
            with self._lock:
                self.in_use -= granted


def _own_cgroups(proc_cgroup: Path) -> list[tuple[str, str]]:
    # "0::/path" is the v2 hierarchy; "N:cpu,cpuacct:/path" a v1 one with the cpu controller.
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _number, controllers, relative = line.split(":", 2)
        if not controllers:
            found.append(("v2", relative))
        elif "cpu" in controllers.split(","):
            found.append(("v1", relative))
    return found


def _v2_quota(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(base: Path) -> float | None:
    try:
        quota = int((base / "cpu.cfs_quota_us").read_text())
        period = int((base / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


#: The budget that prefetch and ``load_safetensors`` share.
READ_BUDGET = ThreadBudget(default_read_threads())
