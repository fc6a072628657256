"""The CPUs a container may use (affinity, cgroup v1/v2 quotas) and the shared reader-thread budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weightcache._transport.cpus import ThreadBudget, cgroup_cpu_quota, default_read_threads, usable_cpus


def cgroup_v2(tmp_path: Path, own: str, limits: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for relative, cpu_max in limits.items():
        (root / relative).mkdir(parents=True, exist_ok=True)
        (root / relative / "cpu.max").write_text(cpu_max + "\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text(f"0::{own}\n")
    return root, proc


def test_a_v2_quota_is_read_and_the_smallest_along_the_path_counts(tmp_path: Path) -> None:
    root, proc = cgroup_v2(
        tmp_path, "/pod/box", {"pod": "250000 100000", "pod/box": "150000 100000", "": "max 100000"}
    )
    assert cgroup_cpu_quota(root, proc) == 1.5
    root, proc = cgroup_v2(tmp_path / "b", "/pod/box", {"pod": "50000 100000", "pod/box": "max 100000"})
    assert cgroup_cpu_quota(root, proc) == 0.5


def test_no_quota_means_the_affinity_mask_decides(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, "/", {"": "max 100000"})
    assert cgroup_cpu_quota(root, proc) is None
    assert usable_cpus(root, proc) == len(os.sched_getaffinity(0))


def test_a_quota_rounds_up_and_caps_the_affinity_mask(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, "/", {"": "10000 100000"})  # a tenth of a CPU still runs a thread
    assert usable_cpus(root, proc) == 1


def test_a_v1_quota_is_read(tmp_path: Path) -> None:
    base = tmp_path / "cgroup" / "cpu,cpuacct" / "docker" / "abc"
    base.mkdir(parents=True)
    (base / "cpu.cfs_quota_us").write_text("200000\n")
    (base / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    assert cgroup_cpu_quota(tmp_path / "cgroup", proc) == 2.0
    (base / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "unlimited"
    assert cgroup_cpu_quota(tmp_path / "cgroup", proc) is None


@pytest.mark.parametrize(("cpus", "threads"), [(1, 4), (2, 8), (4, 16), (64, 16)])
def test_reader_threads_follow_the_cpus(cpus: int, threads: int) -> None:
    assert default_read_threads(cpus) == threads


def test_pools_running_together_share_the_budget() -> None:
    budget = ThreadBudget(8)
    with budget.take() as prefetch:
        with budget.take() as load:
            assert (prefetch, load) == (8, 4)  # never less than half: together at most 1.5x
        with budget.take(3) as explicit:  # a count asked for is what the caller gets
            assert explicit == 3
    with budget.take(2), budget.take() as rest:
        assert rest == 6
    with ThreadBudget(1).take() as alone:
        assert alone == 1
    assert budget.in_use == 0
