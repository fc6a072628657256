"""What :class:`~weightcache.providers.sources.hf.HFSource` asks the Hub, through huggingface_hub.

Kept apart from the source so that naming a repository (URIs, identities, warm ``ensure()``
calls) does not import huggingface_hub; only talking to the Hub does.
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from huggingface_hub import HfApi, get_hf_file_metadata, get_token, hf_hub_download, hf_hub_url
from huggingface_hub import constants as hf_constants
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers, filter_repo_objects
from huggingface_hub.utils._runtime import is_xet_available  # what hf_hub_download itself checks

from ..._core.constants import HTTP_MIN_PART_BYTES, IO_THREADS
from ..._core.staging import Staging
from ..._transport.fsutil import safe_relpath
from ..._transport.hashing import iter_file_chunks
from ..._transport.parallel import run_parallel
from ..._transport.redaction import install_log_redaction, redact_url
from ..._version import __version__
from ...errors import ChecksumMismatchError, EmptySourceError, SizeMismatchError
from ._hf_errors import HubRequest, check_commit_sha, hub_errors
from ._hf_timeouts import hub_deadline

if TYPE_CHECKING:
    from ..._transport.download import HTTPDownloader, Probe
    from .hf import HFSource

install_log_redaction()  # huggingface_hub and httpx2 log URLs: HF_ENDPOINT's user:pass, signed CDN links


class HubClient:
    """Resolves and downloads one :class:`HFSource`'s repository; errors come out as weightcache's."""

    def __init__(
        self,
        source: HFSource,
        *,
        token: str | None,
        endpoint: str | None,
        timeout: float,
        deadline: float,
        connections: int | None = None,
    ) -> None:
        self.source = source
        self._token = token
        self._endpoint = endpoint
        self._timeout = timeout
        self._deadline = deadline
        self._connections = connections
        #: How the last fetch's files came: "ranges" (parallel byte ranges from the CDN),
        #: "xet" (hf_xet), "hub" (one huggingface_hub stream per file), as many as ran.
        self.transfers: set[str] = set()

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
                # An LFS file big enough to split comes in ranges; one request's worth goes as before.
                large = [file for file in files if file.lfs is not None and file.size > HTTP_MIN_PART_BYTES]
                small = [file for file in files if file not in large]
                if small:
                    self.transfers.add("hub")
                streams = [partial(self._fetch_file, sha, file, staging, scratch) for file in small]
                run_parallel(
                    [
                        partial(run_parallel, streams, threads=IO_THREADS),
                        partial(self._fetch_ranged, sha, large, staging, scratch),
                    ],
                    threads=2,
                )

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

    def _fetch_ranged(self, sha: str, files: list[RepoFile], staging: Staging, scratch: Path) -> None:
        """Large LFS files: parallel byte ranges from the CDN location the Hub redirects to.

        huggingface_hub streams each file over one connection, which a CDN caps; these come
        through :mod:`weightcache._transport.http_parts` like URL sources' (one connection budget, resume
        after a kill), checked against the Hub's SHA-256. A file the Hub stores in xet goes
        through hf_xet when it is installed: it fetches content-addressed chunks in parallel itself.
        """
        from ..._transport.download import HTTPDownloader  # imported with httpx2, only when a download runs
        from ..._transport.http_parts import FileJob

        todo = [
            file
            for file in files
            if file.lfs is not None
            and staging.try_reuse(file.path, sha256=file.lfs.sha256, size=file.size) is None
        ]
        metadata = run_parallel([partial(self._metadata, sha, file) for file in todo], threads=IO_THREADS)
        use_xet = is_xet_available()
        xet = [file for file, meta in zip(todo, metadata, strict=True) if use_xet and meta.xet_file_data]
        with HTTPDownloader(connections=self._connections, timeout=self._timeout) as downloader:
            pairs = zip(todo, metadata, strict=True)
            ranged = [(file, meta.location) for file, meta in pairs if file not in xet]
            probes = run_parallel(
                [partial(self._probe, downloader, file, location) for file, location in ranged],
                threads=IO_THREADS,
            )
            jobs = [
                FileJob(location, self._label(file), file.path, probe, sha256, self._headers_for(location))
                for (file, location), probe in zip(ranged, probes, strict=True)
                if (sha256 := file.lfs.sha256 if file.lfs else None)
            ]
            self.transfers.update({"ranges"} if jobs else set(), {"xet"} if xet else set())
            xet_tasks = [partial(self._fetch_file, sha, file, staging, scratch) for file in xet]
            run_parallel(
                [
                    partial(downloader.download_all, jobs, staging),
                    partial(run_parallel, xet_tasks, threads=IO_THREADS),
                ],
                threads=2,
            )

    def _probe(self, downloader: HTTPDownloader, file: RepoFile, location: str) -> Probe:
        probe = downloader.probe(location, self._label(file), headers=self._headers_for(location))
        if probe.size is not None and probe.size != file.size:
            raise SizeMismatchError(
                f"{self._label(file)} arrived with the wrong size ({probe.size:,} bytes, the Hub lists "
                f"{file.size:,}); nothing was published; retry"
            )
        return probe

    def _label(self, file: RepoFile) -> str:
        return f"{file.path} of the Hugging Face {self.source.repo_type} repository {self.source.repo_id}"

    def _metadata(self, sha: str, file: RepoFile) -> Any:
        source = self.source
        url = hf_hub_url(
            source.repo_id, file.path, repo_type=source.repo_type, revision=sha, endpoint=self._endpoint
        )
        return get_hf_file_metadata(
            url,
            token=self._token,
            timeout=self._timeout,
            library_name="weightcache",
            library_version=__version__,
            endpoint=self._endpoint,
            retry_on_errors=True,
        )

    def _headers_for(self, location: str) -> dict[str, str]:
        """The Hub's headers (its token) for a location on the Hub itself; none for another host (a CDN)."""
        hub = urlsplit(self._endpoint or hf_constants.ENDPOINT)
        where = urlsplit(location)
        if (where.scheme, where.netloc) != (hub.scheme, hub.netloc):
            return {}
        return build_hf_headers(token=self._token, library_name="weightcache", library_version=__version__)

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
