"""A source written outside weightcache, as another package would ship it: ``acme:///abs/dir``.

It uses only weightcache's public names. The directory stands for a remote repository: its
version is a hash of every file's name and content, so editing a file is a new upstream version.
Tests install it as a distribution whose ``weightcache.sources`` entry point names it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from weightcache import InvalidSourceError, Plan, Source, SourceChangedError
from weightcache._core.staging import Staging


class AcmeSource(Source):
    """Every file under a directory, fetched as a remote repository would be (offline-first)."""

    scheme = "acme"
    offline_first = True

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_uri(cls, uri: str) -> AcmeSource:
        """Parse ``acme:///abs/dir``."""
        path = uri.split("://", 1)[1]
        if not path.startswith("/"):
            raise InvalidSourceError(f"{uri!r} needs an absolute path, as in acme:///abs/dir")
        return cls(Path(path))

    @property
    def uri(self) -> str:
        """``acme://`` and the directory."""
        return f"acme://{self.root}"

    @property
    def slug(self) -> str:
        """The directory's name."""
        return self.root.name

    def resolve(self) -> Plan:
        """Read every file and hash names and contents: the "commit" the repository is at."""
        files = self._files()
        listing = sorted((name, hashlib.sha256(data).hexdigest()) for name, data in files.items())
        version = "acme-" + hashlib.sha256(repr(listing).encode()).hexdigest()[:20]
        return Plan(version, {"served_from": str(self.root)}, files)

    def plan(self, version: str) -> Plan:
        """A version remembered by the store: the files are read when fetched."""
        return Plan(version, {"served_from": str(self.root)})

    def fetch(self, plan: Plan, staging: Staging) -> dict[str, str]:
        """Write the files the plan read (reading them now for a remembered version that is still current)."""
        if plan.detail is None:
            current = self.resolve()
            if current.version != plan.version:
                raise SourceChangedError(f"{self.uri} is no longer at {plan.version}; run again")
            plan = current
        files: dict[str, bytes] = plan.detail  # type: ignore[assignment]
        staging.plan({name: len(data) for name, data in files.items()})
        for name, data in files.items():
            staging.write_stream(name, [data], size=len(data), sha256=hashlib.sha256(data).hexdigest())
        return {"files_sent": str(len(files))}

    def _files(self) -> dict[str, bytes]:
        return {
            path.relative_to(self.root).as_posix(): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file()
        }
