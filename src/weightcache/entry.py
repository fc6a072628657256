"""An entry: one cached, manifested version of a source, as ``ensure()`` returns it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import EntryNotFoundError
from .manifest import Manifest


@dataclass(frozen=True)
class Entry:
    """A published entry.

    ``path`` is the directory holding the files (pass it to ``from_pretrained``); ``hit``
    tells whether this call found it cached (``True``) or populated it (``False``);
    ``manifest`` lists exactly what is there.
    """

    key: str
    path: Path
    manifest: Manifest
    hit: bool

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
            raise EntryNotFoundError(f"entry {self.key} has no file {name!r}")
        return self.path / name
