"""The manifest: what one entry holds, written last as the entry's only commit marker."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._core.constants import MANIFEST_SCHEMA_VERSION
from ._core.manifest_memo import read_validated
from ._transport.fsutil import atomic_write_bytes
from ._version import __version__
from .errors import ManifestError

if TYPE_CHECKING:
    from ._core.layout import StoreLayout

# Checked by pydantic-core in Rust: the warm path parses a manifest per call, at thousands of files.
_HEX64 = r"^[0-9a-f]{64}$"
# A normalised relative POSIX path: segments that are neither empty, "." nor "..", no "\\" or NUL.
_SEGMENT = r"(?:[^/\\\x00.][^/\\\x00]*|\.[^/\\\x00.][^/\\\x00]*|\.\.[^/\\\x00]+)"
RELPATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"


class FileRecord(BaseModel):
    """One file of an entry: where it lies (relative to the entry), how big it is, its hashes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(
        pattern=RELPATH_PATTERN,
        description="Path relative to the entry directory, POSIX separators, normalised.",
    )
    size: int = Field(ge=0, description="Size in bytes.")
    blake3: str = Field(
        pattern=_HEX64, description="BLAKE3 hash of the content (hex), computed while the file was written."
    )
    sha256: str | None = Field(
        default=None, pattern=_HEX64, description="SHA-256 (hex) the source vouched for, checked on fetch."
    )


class Manifest(BaseModel):
    """What an entry holds; its presence (valid, in place) is what makes a directory an entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = Field(default=MANIFEST_SCHEMA_VERSION, description="Manifest format version.")
    key: str = Field(description="The entry's key: its directory name in the store.")
    source: str = Field(description="The source's identity as a URI, never with a secret in it.")
    version: str = Field(description="The source version this entry holds (a fingerprint, a commit, a hash).")
    source_info: dict[str, str] = Field(
        default_factory=dict, description="What else the source recorded (requested revision, ETag...)."
    )
    files: list[FileRecord] = Field(description="Every file of the entry.")
    total_bytes: int = Field(ge=0, description="Sum of the files' sizes.")
    created_at: datetime = Field(description="When the entry was published (UTC).")
    populate_seconds: float = Field(ge=0, description="How long fetching and publishing took.")
    weightcache_version: str = Field(description="The weightcache release that wrote this manifest.")

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value > MANIFEST_SCHEMA_VERSION:
            raise ValueError(
                f"manifest schema {value} is newer than this weightcache understands "
                f"({MANIFEST_SCHEMA_VERSION}); upgrade weightcache"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len({record.path for record in self.files}) != len(self.files):
            raise ValueError("manifest lists a file twice")
        if sum([record.size for record in self.files]) != self.total_bytes:
            raise ValueError("total_bytes differs from the sum of the file sizes")
        return self

    @classmethod
    def build(
        cls,
        *,
        key: str,
        source: str,
        version: str,
        files: list[FileRecord],
        populate_seconds: float,
        source_info: dict[str, str] | None = None,
    ) -> Manifest:
        """Assemble a manifest for files just fetched, stamped with the time and this release."""
        return cls(
            key=key,
            source=source,
            version=version,
            source_info=source_info or {},
            files=sorted(files, key=lambda record: record.path),
            total_bytes=sum(record.size for record in files),
            created_at=datetime.now(timezone.utc),
            populate_seconds=round(populate_seconds, 3),
            weightcache_version=__version__,
        )

    def to_json(self) -> bytes:
        """The manifest as indented UTF-8 JSON, as written to disk."""
        return self.model_dump_json(indent=2).encode() + b"\n"


def read_manifest(path: Path) -> Manifest:
    """Read and validate a manifest file.

    Raises :class:`FileNotFoundError` when it is absent and :class:`ManifestError` when it
    is truncated, not JSON, or inconsistent: such a directory is not an entry.
    """
    # Validated once per process per file state (see manifest_memo): a warm hit re-reads nothing.
    return read_validated(path, lambda data, where: parse_manifest(data, where=where))


def parse_manifest(data: bytes, *, where: str) -> Manifest:
    """Validate manifest JSON read from anywhere (a file, a Modal Volume, an archive).

    ``where`` names its origin in the :class:`ManifestError` raised when it is invalid.
    """
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ())) or "document"
        raise ManifestError(f"manifest {where} is invalid at {location}: {first['msg']}") from exc
    except (ValueError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest {where} is not valid JSON: {exc}") from exc


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write a manifest atomically (temp file, fsync, rename, fsync of the directory)."""
    atomic_write_bytes(path, manifest.to_json())


def load_manifest(layout: StoreLayout, key: str) -> Manifest | None:
    """Entry ``key``'s manifest if it is present and valid, else ``None`` (then it is not an entry)."""
    try:
        manifest = read_manifest(layout.manifest_path(key))
    except (OSError, ManifestError):
        return None
    return manifest if manifest.key == key else None


def newer_schema(layout: StoreLayout, key: str) -> int | None:
    """The schema of entry ``key``'s manifest when a newer weightcache wrote it, else ``None``.

    Such an entry is not this release's to use, repair or collect: it is left alone.
    """
    try:
        schema = json.loads(layout.manifest_path(key).read_bytes()).get("schema_version")
    except (OSError, ValueError, AttributeError):
        return None
    return schema if isinstance(schema, int) and schema > MANIFEST_SCHEMA_VERSION else None
