"""How numbers are written in tables: one place, so every case reads the same way."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``850 µs``, ``12.3 ms`` or ``4.56 s`` (``-12.3 ms`` when negative)."""
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def rate(nbytes: int, seconds: float) -> float:
    """Throughput in GB/s (10^9 bytes per second)."""
    return nbytes / seconds / 1e9


def gbps(value: float) -> str:
    """``1.23 GB/s``."""
    return f"{value:.3g} GB/s"


def ratio(value: float) -> str:
    """``1.9x``."""
    return f"{value:.2g}x" if value < 10 else f"{value:.0f}x"


def size(nbytes: int) -> str:
    """``2.0 GiB``, ``64 MiB``, ``4 KiB``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} B"
