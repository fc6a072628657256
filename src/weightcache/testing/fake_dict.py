"""``FakeModalDict``: a ``modal.Dict`` simulated in a local file, shared by real processes.

It keeps the semantics the lease relies on (modal/dict.py): ``put(key, value,
skip_if_exists=True)`` is an atomic create-if-absent that returns whether it created the
key, and every process that opens the same ``path`` sees one Dict. Values are pickled, as
Modal serializes them. Entries do not expire (Modal's do, after a period without access).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from ._volume_state import replace_bytes

_MISSING = object()


class FakeModalDict:
    """A Dict kept in the file ``path`` (created on first write); open it in any process."""

    def __init__(self, path: str | os.PathLike[str], *, name: str = "fake-dict") -> None:
        self.path = Path(path).absolute()
        self.name = name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(f"{self.path}.lock")

    def __repr__(self) -> str:
        return f"FakeModalDict({str(self.path)!r}, name={self.name!r})"

    def get(self, key: Any, default: Any = None) -> Any:
        """The value at ``key``, or ``default`` if it is absent."""
        return self._load().get(key, default)

    def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Store ``value`` at ``key``; with ``skip_if_exists``, only if absent. Return whether stored."""
        with self._changing() as items:
            if skip_if_exists and key in items:
                return False
            items[key] = value
            return True

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value; ``default`` (or :class:`KeyError`) if absent."""
        with self._changing() as items:
            if key in items:
                return items.pop(key)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def contains(self, key: Any) -> bool:
        """Whether ``key`` is present."""
        return key in self._load()

    def items(self) -> list[tuple[Any, Any]]:
        """Every key and value (``modal.Dict.items()`` iterates them)."""
        return list(self._load().items())

    def len(self) -> int:
        """How many keys the Dict holds (``modal.Dict.len()``)."""
        return len(self._load())

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def _load(self) -> dict[Any, Any]:
        # Reads take no lock, as a Dict read on Modal's server does not wait for writers: every
        # write replaces the file in one rename, so a reader sees the Dict before it or after it.
        try:
            return pickle.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}

    @contextmanager
    def _changing(self) -> Iterator[dict[Any, Any]]:
        with self._lock:
            items = self._load()
            before = pickle.dumps(items)
            yield items
            if pickle.dumps(items) != before:
                replace_bytes(self.path, pickle.dumps(items))
