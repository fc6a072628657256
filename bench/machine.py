"""The machine and software a run measured on: numbers mean little without them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from .harness import peer_version

#: Distributions whose versions the report names: ours, the peers (pooch downloads with requests), and
#: what our hashing and the Modal store run on.
DISTRIBUTIONS = ("weightcache", "huggingface_hub", "pooch", "requests", "blake3", "modal")


def describe(data_dir: Path) -> list[tuple[str, str]]:
    """(what, value) rows: CPU, memory, the data directory's filesystem, kernel, date, versions."""
    rows = [
        ("date (UTC)", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("CPU", _cpu_model()),
        ("cores", f"{os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable by this run"),
        ("memory", _meminfo_total()),
        ("data directory", f"{data_dir} on {_filesystem(data_dir)}"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("Python", sys.version.split()[0]),
        *((name, peer_version(name)) for name in DISTRIBUTIONS),
        ("cp", _first_line(["cp", "--version"])),
    ]
    return rows


def load_average() -> str:
    """The 1/5/15-minute load averages, to show how busy the machine was."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _meminfo_total() -> str:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return "unknown"


def _filesystem(path: Path) -> str:
    """``/dev/vda (ext4, mounted at /, ...)`` for the mount holding ``path``."""
    target = os.path.realpath(path)
    best = ("", "unknown", "unknown")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            device, mount_point, fs_type = line.split()[:3]
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best[0]):
                best = (mount_point, device, fs_type)
    mount_point, device, fs_type = best
    return f"{device} ({fs_type}, mounted at {mount_point}{_rotational(device)})"


def _rotational(device: str) -> str:
    flag = Path("/sys/class/block") / Path(device).name / "queue" / "rotational"
    if not flag.exists():
        return ""
    return f", kernel's rotational flag {flag.read_text().strip()}"


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "not found"
    return done.stdout.splitlines()[0] if done.stdout else "unknown"
