"""Hugging Face Hub repositories: ``hf://[datasets/|spaces/]ORG/NAME[@REVISION][?allow=...&ignore=...]``.

A branch or tag is resolved to a commit sha with one request, and an entry holds exactly that
commit. Files are downloaded with huggingface_hub's own transfer functions (xet when the Hub
offers it), in parallel, straight into the staging area; every LFS file is then checked against
the sha256 the Hub's tree listing gives, and every other file against its git blob id, before
anything is published (huggingface_hub itself checks only sizes). A file whose sha256 is already
in an earlier entry of the same repository is linked from there instead of downloaded.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from huggingface_hub import HfApi, get_token, hf_hub_download
from huggingface_hub import constants as hf_constants
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import filter_repo_objects

from .._version import __version__
from ..constants import IO_THREADS, hf_endpoint
from ..errors import ChecksumMismatchError, EmptySourceError, InvalidSourceError
from ..fsutil import safe_relpath
from ..hashing import iter_file_chunks
from ..parallel import run_parallel
from ..redaction import redact_url
from ..staging import Staging
from .base import Source
from .hf_errors import HubRequest, hub_errors

#: Repository type -> its prefix in ``hf://`` URIs (the same as huggingface_hub's ``HfFileSystem``).
_TYPE_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_COMMIT_SHA = re.compile(r"^[0-9a-fA-F]{40}$")
_PATTERN_SAFE = "*?[]!/._-"


class HFSource(Source):
    """A Hugging Face Hub repository at a revision, optionally filtered by glob patterns.

    ``HFSource("shuttleai/shuttle-jaguar", allow_patterns=["model_index.json", "transformer/*"])``
    or ``hf://shuttleai/shuttle-jaguar?allow=model_index.json,transformer/*``. The token comes
    from ``token=`` or, like huggingface_hub, from ``HF_TOKEN`` or ``hf auth login``; it never
    appears in a URI, a manifest, a message or a log line. ``endpoint`` (default ``HF_ENDPOINT``)
    points at a mirror or a local fake Hub.
    """

    scheme = "hf"
    offline_first = True

    def __init__(
        self,
        repo_id: str,
        revision: str = "main",
        allow_patterns: str | list[str] | None = None,
        ignore_patterns: str | list[str] | None = None,
        token: str | None = None,
        repo_type: str = "model",
        *,
        endpoint: str | None = None,
    ) -> None:
        if repo_type not in _TYPE_PREFIXES:
            raise InvalidSourceError(f"repo type {repo_type!r} is not one of {', '.join(_TYPE_PREFIXES)}")
        if not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id or len(repo_id) > 96:
            raise InvalidSourceError(
                f"{repo_id!r} is not a Hugging Face repo id; use ORG/NAME, as in hf://acme/tiny"
            )
        if not revision:
            raise InvalidSourceError(f"the revision of hf://{repo_id} is empty; name a branch, tag or commit")
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.revision = revision.lower() if _COMMIT_SHA.match(revision) else revision
        self.allow_patterns = _patterns(allow_patterns)
        self.ignore_patterns = _patterns(ignore_patterns)
        self._token = token
        self._endpoint = endpoint or hf_endpoint()

    @classmethod
    def from_uri(cls, uri: str) -> HFSource:
        """Parse ``hf://[datasets/|spaces/]ORG/NAME[@REVISION][?allow=GLOB,...&ignore=GLOB,...]``."""
        return cls(**_parse_uri(uri))

    @property
    def uri(self) -> str:
        """``hf://[TYPE/]ORG/NAME@REVISION[?allow=...&ignore=...]`` (the revision is always spelled out)."""
        revision = quote(self.revision, safe="")
        return f"hf://{_TYPE_PREFIXES[self.repo_type]}{self.repo_id}@{revision}{self._query()}"

    @property
    def identity(self) -> str:
        """The URI without the revision: ``@main`` and the sha it resolved to share their entries."""
        return f"hf://{_TYPE_PREFIXES[self.repo_type]}{self.repo_id}{self._query()}"

    @property
    def slug(self) -> str:
        """The repository's name."""
        return self.repo_id.rsplit("/", 1)[-1]

    def pinned_version(self) -> str | None:
        """The commit sha, when the revision is one (then no request is needed to resolve it)."""
        return self.revision if _COMMIT_SHA.match(self.revision) else None

    def resolve(self) -> str:
        """Ask the Hub which commit the branch or tag points at now (one request)."""
        with hub_errors(self._hub_request()):
            info = self._api().repo_info(self.repo_id, revision=self.revision, repo_type=self.repo_type)
        return str(info.sha)

    def fetch(self, version: str, staging: Staging) -> None:
        """Download the selected files of commit ``version`` in parallel; check them against the Hub."""
        with hub_errors(self._hub_request()):
            files = self._listing(version)
            staging.plan({file.path: file.size for file in files})
            with staging.scratch_dir() as scratch:
                tasks = [partial(self._fetch_file, version, file, staging, scratch) for file in files]
                run_parallel(tasks, threads=IO_THREADS)

    def source_info(self) -> dict[str, str]:
        """The repository, its type and the revision asked for (the entry's version is the commit)."""
        return {"repo_id": self.repo_id, "repo_type": self.repo_type, "requested_revision": self.revision}

    def _listing(self, sha: str) -> list[RepoFile]:
        tree = self._api().list_repo_tree(
            self.repo_id, recursive=True, revision=sha, repo_type=self.repo_type
        )
        files = [item for item in tree if isinstance(item, RepoFile)]
        selected = list(
            filter_repo_objects(
                files,
                allow_patterns=list(self.allow_patterns) or None,
                ignore_patterns=list(self.ignore_patterns) or None,
                key=lambda item: item.path,
            )
        )
        if not selected:
            names = ", ".join(sorted(item.path for item in files)[:5]) or "no files"
            raise EmptySourceError(
                f"no file of {self.uri} at commit {sha[:12]} matches the allow/ignore patterns; "
                f"check them against the repository's files ({names})"
            )
        for item in selected:
            safe_relpath(item.path)
        return selected

    def _fetch_file(self, sha: str, file: RepoFile, staging: Staging, scratch: Path) -> None:
        sha256 = file.lfs.sha256 if file.lfs is not None else None
        if sha256 is not None and staging.try_reuse(file.path, sha256=sha256, size=file.size) is not None:
            return
        downloaded = hf_hub_download(
            self.repo_id,
            file.path,
            repo_type=self.repo_type,
            revision=sha,
            local_dir=scratch,
            token=self._token,
            endpoint=self._endpoint,
            library_name="weightcache",
            library_version=__version__,
            tqdm_class=_progress_bar(staging, file.path, file.size),  # type: ignore[arg-type]
        )
        target = staging.path_for(file.path)
        os.replace(downloaded, target)
        if sha256 is None:
            _check_git_blob(target, file)
        staging.adopt(file.path, size=file.size, sha256=sha256)

    def _api(self) -> HfApi:
        return HfApi(
            endpoint=self._endpoint,
            token=self._token,
            library_name="weightcache",
            library_version=__version__,
        )

    def _hub_request(self) -> HubRequest:
        return HubRequest(
            repo=f"{self.repo_type} repository {self.repo_id}",
            revision=self.revision,
            endpoint=redact_url(self._endpoint or hf_constants.ENDPOINT),
            has_token=bool(self._token or get_token()),
        )

    def _query(self) -> str:
        params = [
            f"{name}={','.join(quote(pattern, safe=_PATTERN_SAFE) for pattern in patterns)}"
            for name, patterns in (("allow", self.allow_patterns), ("ignore", self.ignore_patterns))
            if patterns
        ]
        return "?" + "&".join(params) if params else ""


def _patterns(value: str | list[str] | None) -> tuple[str, ...]:
    """Patterns as a sorted, de-duplicated tuple: their order does not change what is selected."""
    patterns = [value] if isinstance(value, str) else list(value or [])
    if any(not pattern for pattern in patterns):
        raise InvalidSourceError("an allow/ignore pattern is empty; remove it or give a glob such as *.json")
    return tuple(sorted(set(patterns)))


def _parse_uri(uri: str) -> dict[str, Any]:
    rest = uri.split("://", 1)[1]
    if "#" in rest:
        raise InvalidSourceError(f"{uri!r} has a #fragment, which hf:// URIs do not use; remove it")
    path, _, query = rest.partition("?")
    repo, _, revision = path.partition("@")
    repo_type = "model"
    for name, prefix in (*_TYPE_PREFIXES.items(), ("model", "models/")):
        if prefix and repo.startswith(prefix):
            repo_type, repo = name, repo[len(prefix) :]
            break
    parsed: dict[str, Any] = {
        "repo_id": repo,
        "repo_type": repo_type,
        "revision": unquote(revision) if revision else "main",
    }
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        if name not in ("allow", "ignore"):
            raise InvalidSourceError(
                f"{uri!r} has an unknown parameter {name!r}; hf:// URIs take allow= and ignore="
            )
        parsed.setdefault(f"{name}_patterns", []).extend(unquote(item) for item in value.split(","))
    return parsed


def _check_git_blob(path: Path, file: RepoFile) -> None:
    """Check a file kept in git (not LFS) against its blob id: SHA-1 of a short header and the content."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    for chunk in iter_file_chunks(path):
        digest.update(chunk)
    if digest.hexdigest() != file.blob_id:
        raise ChecksumMismatchError(
            f"{file.path} has git blob id {digest.hexdigest()} but the Hub lists {file.blob_id}; "
            "the bytes are corrupt, so nothing was published; retry"
        )


def _progress_bar(staging: Staging, name: str, size: int) -> type:
    """A stand-in for tqdm for huggingface_hub's transfer functions: bytes go to ``staging``'s progress."""

    class FileProgress:
        def __init__(self, *args: object, **kwargs: Any) -> None:
            self.n = 0
            self.total = kwargs.get("total")

        def update(self, n: float | None = 1) -> None:
            staging.report_bytes(name, int(n or 0), file_size=size)

        def update_transfer(self, n: float | None = 1) -> None:
            """Network bytes, counted by :meth:`update` once written (its presence makes xet report here)."""

        def set_postfix_str(self, *args: object, **kwargs: object) -> None:
            """Speeds are the caller's to show."""

        set_transfer_postfix_str = set_postfix_str
        refresh = close = set_postfix_str

        def __enter__(self) -> FileProgress:
            return self

        def __exit__(self, *exc: object) -> None:
            """Nothing to close."""

    return FileProgress
