"""An entry: one cached, manifested version of a source, as ``ensure()`` returns it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import EntryFileNotFoundError, EntryNotFoundError
from .manifest import Manifest

#: ``source_info`` keys an import records: where the entry came from, and whether the user vouched for it.
IMPORTED_FROM = "imported_from"
IMPORT_TRUSTED = "import_trusted"


@dataclass(frozen=True)
class Entry:
    """A published entry.

    ``path`` is the directory holding the files (pass it to ``from_pretrained``); ``hit``
    tells whether this call found it cached (``True``) or populated it (``False``);
    ``manifest`` lists exactly what is there.

    An entry is a path-like object for its files directory: ``from_pretrained(entry)``,
    ``open(entry / "config.json")`` and ``os.fspath(entry)`` all work. Its files are read-only.
    """

    key: str
    path: Path
    manifest: Manifest
    hit: bool

    def __fspath__(self) -> str:
        """The files directory, so an entry works wherever a path does."""
        return os.fspath(self.path)

    def __truediv__(self, name: str | os.PathLike[str]) -> Path:
        """``entry / "config.json"``: a path inside the files directory."""
        return self.path / name

    @property
    def imported_from(self) -> str | None:
        """Where an imported entry came from (``archive NAME``), or ``None`` for one its source populated."""
        return self.manifest.source_info.get(IMPORTED_FROM)

    @property
    def source(self) -> str:
        """The source's identity URI."""
        return self.manifest.source

    @property
    def version(self) -> str:
        """The source version held."""
        return self.manifest.version

    @property
    def total_bytes(self) -> int:
        """Total size of the files."""
        return self.manifest.total_bytes

    @property
    def files(self) -> list[Path]:
        """Absolute paths of every file, in manifest order."""
        return [self.path / record.path for record in self.manifest.files]

    def file(self, name: str | None = None) -> Path:
        """The path of file ``name`` (relative to the entry), or of the only file when ``name`` is omitted."""
        if name is None:
            if len(self.manifest.files) != 1:
                raise EntryNotFoundError(
                    f"entry {self.key} holds {len(self.manifest.files)} files; name the one you want"
                )
            return self.path / self.manifest.files[0].path
        if not any(record.path == name for record in self.manifest.files):
            raise EntryFileNotFoundError(f"entry {self.key} has no file {name!r}")
        return self.path / name
