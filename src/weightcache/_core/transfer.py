"""Copying an existing entry into a store from elsewhere (a Modal Volume, an archive).

The copy goes through ``WeightCache.ensure`` like any populate: staged, checked, published
manifest-last under the entry's populate lock, then persisted. What makes it a copy is the
source: :class:`ManifestSource` reproduces the entry an existing manifest describes and
refuses any byte that differs from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..entry import IMPORT_TRUSTED, IMPORTED_FROM
from ..errors import ChecksumMismatchError, IntegrityError, ManifestError
from ..manifest import Manifest
from ..providers.base import Plan, Source
from .layout import entry_key
from .staging import Staging

#: A stream of files: (path relative to the entry, chunks of its content), in any order.
FileStream = Iterable[tuple[str, Iterable[bytes]]]


class ManifestSource(Source):
    """The entry ``manifest`` describes, its files read from ``open_files()`` and checked as written.

    Every file must be one the manifest lists, with exactly its size, BLAKE3 (and SHA-256 when
    recorded), and every listed file must come; otherwise nothing is published. ``origin``
    names where the files come from in errors. The entry keeps its key, so a store that
    already holds it reports a hit without reading anything.

    ``imported`` marks the copy as imported from ``origin`` in its manifest's ``source_info``
    (``imported_from``, and ``import_trusted``: ``yes`` when ``trusted``). An archive proves only
    that it is intact, not that it holds the source's own bytes, so an untrusted import is
    checked against its source before a plain ``ensure`` of that source serves it.
    """

    scheme = "entry"

    def __init__(
        self,
        manifest: Manifest,
        open_files: Callable[[], FileStream],
        *,
        origin: str,
        imported: bool = False,
        trusted: bool = False,
    ) -> None:
        self._slug = manifest.key.rsplit("-", 1)[0]
        if entry_key(self._slug, manifest.source, manifest.version) != manifest.key:
            raise ManifestError(
                f"the manifest in {origin} names key {manifest.key}, which its source and version "
                "do not give; it was altered, so nothing was copied"
            )
        self.manifest = manifest
        self._open_files = open_files
        self._origin = origin
        self._imported = imported
        self._trusted = trusted

    @property
    def uri(self) -> str:
        """The original source's identity (manifests never hold secrets)."""
        return self.manifest.source

    @property
    def slug(self) -> str:
        """The original source's slug, as it prefixes the key."""
        return self._slug

    def pinned_version(self) -> str:
        """The manifest's version: a copy is always of one exact version."""
        return self.manifest.version

    def resolve(self) -> Plan:
        """The manifest's version (nothing is asked)."""
        return self.plan(self.manifest.version)

    def plan(self, version: str) -> Plan:
        """``version``, with what the original source recorded and, for an import, where it came from.

        An import replaces any import marks the archive's manifest carries: only this import says
        what it is. A plain copy (a pull) keeps them, so a copy of an import stays one.
        """
        info = dict(self.manifest.source_info)
        if self._imported:
            info[IMPORTED_FROM] = self._origin
            info[IMPORT_TRUSTED] = "yes" if self._trusted else "no"
        return Plan(version, info)

    def fetch(self, plan: Plan, staging: Staging) -> None:
        """Write every file from the stream into staging, checking each against the manifest."""
        expected = {record.path: record for record in self.manifest.files}
        staging.plan({record.path: record.size for record in self.manifest.files})
        for name, chunks in self._open_files():
            record = expected.get(name)
            if record is None:
                raise IntegrityError(
                    f"{self._origin} holds {name!r}, which its manifest does not list; nothing was published"
                )
            written = staging.write_stream(name, chunks, size=record.size, sha256=record.sha256)
            if written.blake3 != record.blake3:
                raise ChecksumMismatchError(
                    f"{name} from {self._origin} differs from its manifest (blake3); the copy is "
                    "corrupt or was altered, so nothing was published"
                )
        missing = sorted(set(expected) - {record.path for record in staging.records()})
        if missing:
            raise IntegrityError(
                f"{self._origin} lacks {len(missing)} file(s) its manifest lists "
                f"(first: {missing[0]}); nothing was published"
            )
