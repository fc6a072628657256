"""huggingface_hub's errors as weightcache's: one sentence each, saying what to do, never a token."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
from huggingface_hub.errors import (
    DisabledRepoError,
    FileMetadataError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..._core.constants import ENV_HF_TOKEN, ENV_HUB_DEADLINE, ENV_HUB_TIMEOUT
from ..._transport.redaction import redact_text
from ...errors import (
    SourceAuthError,
    SourceChangedError,
    SourceError,
    SourceNotFoundError,
    SourceUnreachableError,
    WeightCacheError,
)
from ._hf_timeouts import HubDeadlineExceeded

_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubRequest:
    """What a message needs to name: the repository, the revision, the endpoint, whether a token was sent."""

    repo: str  # e.g. "model repository acme/tiny"
    revision: str
    endpoint: str
    has_token: bool
    timeout: float
    deadline: float


@contextlib.contextmanager
def hub_errors(request: HubRequest) -> Iterator[None]:
    """Translate the errors huggingface_hub (and its HTTP client) raise inside the block, by type.

    Their own messages name request URLs, which may hold ``HF_ENDPOINT``'s ``user:pass@`` or a
    signed CDN link; they stay chained as the cause (``--debug`` shows it), redacted.
    """
    try:
        yield
    except WeightCacheError:
        raise
    except Exception as exc:
        _redact_chain(exc)
        error = _translate(request, exc)
        if error is None:
            raise
        raise error from exc


def _translate(request: HubRequest, exc: Exception) -> WeightCacheError | None:
    if isinstance(exc, GatedRepoError):
        return SourceAuthError(_gated(request))
    if isinstance(exc, RepositoryNotFoundError):
        return SourceNotFoundError(_not_found(request))
    if isinstance(exc, RevisionNotFoundError):
        return SourceNotFoundError(
            f"revision {request.revision!r} does not exist in the Hugging Face {request.repo}; "
            "check the branch, tag or commit"
        )
    if isinstance(exc, RemoteEntryNotFoundError):
        return SourceChangedError(
            f"a file listed in the Hugging Face {request.repo} vanished during the download; run again"
        )
    if isinstance(exc, DisabledRepoError):
        return SourceNotFoundError(f"the Hugging Face {request.repo} has been disabled on the Hub")
    if isinstance(exc, HfHubHTTPError):
        return _http_error(request, exc.response.status_code)
    if isinstance(exc, OfflineModeIsEnabled):
        return SourceUnreachableError(
            f"HF_HUB_OFFLINE is set, so the Hub cannot be asked about the {request.repo}; "
            "unset it, or use a cached entry (ensure without --refresh)"
        )
    return _transport_error(request, exc)


def _transport_error(request: HubRequest, exc: BaseException) -> WeightCacheError | None:
    if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None:
        # hf_hub_download wraps what its metadata request met (file_download.py, _raise_on_head_call_error).
        return _transport_error(request, exc.__cause__) or _unreachable(request, "the network failed")
    if isinstance(exc, HubDeadlineExceeded):
        return _unreachable(
            request, f"no answer within {request.deadline:g} s; raise {ENV_HUB_DEADLINE} if it is just slow"
        )
    if isinstance(exc, httpx2.TimeoutException):
        return _unreachable(
            request, f"timed out after {request.timeout:g} s; raise {ENV_HUB_TIMEOUT} if it is just slow"
        )
    if isinstance(exc, httpx2.TooManyRedirects):
        return SourceError(
            f"the Hub at {request.endpoint} redirected too many times for the {request.repo}; "
            "check HF_ENDPOINT and any proxy in between"
        )
    if isinstance(exc, (json.JSONDecodeError, FileMetadataError)):  # no JSON; a file without ETag or commit
        return _not_the_hub(request)
    if isinstance(exc, (httpx2.TransportError, LocalEntryNotFoundError)):
        return _unreachable(request, "the network failed")
    return None


def _redact_chain(error: BaseException | None) -> None:
    """Redact the URLs in the messages of ``error`` and of the errors chained to it."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.args = tuple(redact_text(arg) if isinstance(arg, str) else arg for arg in error.args)
        error = error.__cause__ or error.__context__


def check_commit_sha(request: HubRequest, sha: object) -> str:
    """``sha`` if it is a commit sha, else the error for an answer that did not come from a Hub."""
    if not isinstance(sha, str) or not _COMMIT_SHA.fullmatch(sha):
        raise _not_the_hub(request)
    return sha


def _not_the_hub(request: HubRequest) -> SourceError:
    return SourceError(
        f"{request.endpoint} answered the request for the {request.repo} with something that is not the "
        "Hub's API (a proxy or captive portal page?); check the network, the proxy or HF_ENDPOINT"
    )


def _gated(request: HubRequest) -> str:
    if request.has_token:
        return (
            f"the Hugging Face {request.repo} is gated and the token in use has no access to it; "
            "accept its conditions on the Hub with that token's account, or set "
            f"{ENV_HF_TOKEN} to a token of an account that has"
        )
    return (
        f"the Hugging Face {request.repo} is gated; accept its conditions on the Hub, then set "
        f"{ENV_HF_TOKEN} to a token of that account"
    )


def _not_found(request: HubRequest) -> str:
    if request.has_token:
        return (
            f"the Hugging Face {request.repo} was not found, or the token in use cannot read it; "
            "check the name and repo type, and the token's permissions"
        )
    return (
        f"the Hugging Face {request.repo} was not found; check the name and repo type, "
        f"or if it is private set {ENV_HF_TOKEN} to a token that can read it"
    )


def _http_error(request: HubRequest, status: int) -> SourceError:
    if status == 401:
        return SourceAuthError(
            f"the Hub rejected the token in use (HTTP 401) for the {request.repo}; "
            f"set {ENV_HF_TOKEN} to a valid token, or unset it for public repositories"
        )
    if status == 403:
        return SourceAuthError(
            f"the Hub refused access (HTTP 403) to the {request.repo}; check that the token in use "
            f"({ENV_HF_TOKEN}) has read permission for it"
        )
    if status in (408, 429) or status >= 500:
        return _unreachable(request, f"HTTP {status}")
    return SourceError(f"the Hub answered HTTP {status} for the {request.repo}; retry, or check the request")


def _unreachable(request: HubRequest, reason: str) -> SourceUnreachableError:
    return SourceUnreachableError(
        f"cannot reach the Hugging Face Hub at {request.endpoint} for the {request.repo} ({reason}); "
        "check the network or HF_ENDPOINT and retry"
    )
