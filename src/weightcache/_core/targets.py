"""What ``prefetch`` and ``load_safetensors`` accept: entries, file or directory paths, or a list of them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..entry import Entry
from ..errors import WeightFileNotFoundError

Target = Entry | str | os.PathLike[str]
#: One target or several: an :class:`Entry`, a path to a file or a directory.
Targets = Target | Iterable[Target]


def flatten_targets(targets: Targets) -> list[Entry | Path]:
    """``targets`` as a list of entries and paths (a single target becomes a one-item list)."""
    items = [targets] if isinstance(targets, (Entry, str, os.PathLike)) else list(targets)
    return [item if isinstance(item, Entry) else Path(item) for item in items]


def missing_file_error(path: Path) -> WeightFileNotFoundError:
    """The error for a path that should exist and does not."""
    return WeightFileNotFoundError(
        f"{path} does not exist; check the path, or run `weightcache ensure` (with --repair for a "
        "damaged entry) to fetch the weights first"
    )


def unique_paths(paths: Iterable[Path]) -> list[Path]:
    """``paths`` in order without repeats, counting two names of one file (a link and its target) once."""
    seen: set[str] = set()
    unique = []
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique
