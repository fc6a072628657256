"""What :class:`~weightcache.providers.hf.HFSource` asks the Hub, through huggingface_hub.

Kept apart from the source so that naming a repository (URIs, identities, warm ``ensure()``
calls) does not import huggingface_hub; only talking to the Hub does.
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import HfApi, get_token, hf_hub_download
from huggingface_hub import constants as hf_constants
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import filter_repo_objects

from .._version import __version__
from ..constants import IO_THREADS
from ..errors import ChecksumMismatchError, EmptySourceError, SizeMismatchError
from ..fsutil import safe_relpath
from ..hashing import iter_file_chunks
from ..parallel import run_parallel
from ..redaction import install_log_redaction, redact_url
from ..staging import Staging
from .hf_errors import HubRequest, check_commit_sha, hub_errors
from .hf_timeouts import hub_deadline

if TYPE_CHECKING:
    from .hf import HFSource

install_log_redaction()  # huggingface_hub and httpx2 log URLs: HF_ENDPOINT's user:pass, signed CDN links


class HubClient:
    """Resolves and downloads one :class:`HFSource`'s repository; errors come out as weightcache's."""

    def __init__(
        self, source: HFSource, *, token: str | None, endpoint: str | None, timeout: float, deadline: float
    ) -> None:
        self.source = source
        self._token = token
        self._endpoint = endpoint
        self._timeout = timeout
        self._deadline = deadline

    def resolve(self) -> str:
        """The commit the source's revision names now (one request, bounded by the deadline)."""
        source = self.source
        request = self._hub_request()
        with hub_errors(request), hub_deadline(self._timeout, self._deadline):
            info = self._api().repo_info(source.repo_id, revision=source.revision, repo_type=source.repo_type)
            return check_commit_sha(request, info.sha)

    def fetch(self, sha: str, staging: Staging) -> None:
        """Download the selected files of commit ``sha`` in parallel, checked against the Hub's hashes."""
        with hub_errors(self._hub_request()):
            with hub_deadline(self._timeout, self._deadline):
                files = self._listing(sha)
            staging.plan({file.path: file.size for file in files})
            with staging.scratch_dir() as scratch:
                tasks = [partial(self._fetch_file, sha, file, staging, scratch) for file in files]
                run_parallel(tasks, threads=IO_THREADS)

    def _listing(self, sha: str) -> list[RepoFile]:
        tree = self._api().list_repo_tree(
            self.source.repo_id, recursive=True, revision=sha, repo_type=self.source.repo_type
        )
        files = [item for item in tree if isinstance(item, RepoFile)]
        selected = list(
            filter_repo_objects(
                files,
                allow_patterns=list(self.source.allow_patterns) or None,
                ignore_patterns=list(self.source.ignore_patterns) or None,
                key=lambda item: item.path,
            )
        )
        if not selected:
            names = ", ".join(sorted(item.path for item in files)[:5]) or "no files"
            raise EmptySourceError(
                f"no file of {self.source.uri} at commit {sha[:12]} matches the allow/ignore patterns; "
                f"check them against the repository's files ({names})"
            )
        for item in selected:
            safe_relpath(item.path)
        return selected

    def _fetch_file(self, sha: str, file: RepoFile, staging: Staging, scratch: Path) -> None:
        sha256 = file.lfs.sha256 if file.lfs is not None else None
        if sha256 is not None and staging.try_reuse(file.path, sha256=sha256, size=file.size) is not None:
            return
        try:
            downloaded = self._download(sha, file, staging, scratch)
        except OSError as exc:
            # huggingface_hub reports a download whose size differs from the listed one with a bare
            # OSError without errno (file_download.py, http_get's "consistency check"); every other
            # error it raises has a type of its own, and so do the OS's.
            if type(exc) is OSError and exc.errno is None:
                raise SizeMismatchError(
                    f"{file.path} of the Hugging Face {self.source.repo_type} repository "
                    f"{self.source.repo_id} arrived with the wrong size; nothing was published; retry"
                ) from exc
            raise
        target = staging.path_for(file.path)
        os.replace(downloaded, target)
        if sha256 is None:
            _check_git_blob(target, file)
        staging.adopt(file.path, size=file.size, sha256=sha256)

    def _download(self, sha: str, file: RepoFile, staging: Staging, scratch: Path) -> str:
        return hf_hub_download(
            self.source.repo_id,
            file.path,
            repo_type=self.source.repo_type,
            revision=sha,
            local_dir=scratch,
            token=self._token,
            endpoint=self._endpoint,
            library_name="weightcache",
            library_version=__version__,
            etag_timeout=self._timeout,
            tqdm_class=_progress_bar(staging, file.path, file.size),  # type: ignore[arg-type]
        )

    def _api(self) -> HfApi:
        return HfApi(
            endpoint=self._endpoint,
            token=self._token,
            library_name="weightcache",
            library_version=__version__,
        )

    def _hub_request(self) -> HubRequest:
        return HubRequest(
            repo=f"{self.source.repo_type} repository {self.source.repo_id}",
            revision=self.source.revision,
            endpoint=redact_url(self._endpoint or hf_constants.ENDPOINT),
            has_token=bool(self._token or get_token()),
            timeout=self._timeout,
            deadline=self._deadline,
        )


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
