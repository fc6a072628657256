"""huggingface_hub's errors as weightcache's: one sentence each, saying what to do, never a token."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..constants import ENV_HF_TOKEN
from ..errors import (
    SizeMismatchError,
    SourceAuthError,
    SourceChangedError,
    SourceError,
    SourceNotFoundError,
    SourceUnreachableError,
    WeightCacheError,
)


@dataclass(frozen=True)
class HubRequest:
    """What a message needs to name: the repository, the revision, the endpoint, whether a token was sent."""

    repo: str  # e.g. "model repository acme/tiny"
    revision: str
    endpoint: str
    has_token: bool


@contextlib.contextmanager
def hub_errors(request: HubRequest) -> Iterator[None]:
    """Translate the errors huggingface_hub (and its HTTP client) raise inside the block."""
    try:
        yield
    except WeightCacheError:
        raise
    except GatedRepoError as exc:
        raise SourceAuthError(_gated(request)) from exc
    except RepositoryNotFoundError as exc:
        raise SourceNotFoundError(_not_found(request)) from exc
    except RevisionNotFoundError as exc:
        raise SourceNotFoundError(
            f"revision {request.revision!r} does not exist in the Hugging Face {request.repo}; "
            "check the branch, tag or commit"
        ) from exc
    except RemoteEntryNotFoundError as exc:
        raise SourceChangedError(
            f"a file listed in the Hugging Face {request.repo} vanished during the download; run again"
        ) from exc
    except DisabledRepoError as exc:
        raise SourceNotFoundError(f"the Hugging Face {request.repo} has been disabled on the Hub") from exc
    except HfHubHTTPError as exc:
        raise _http_error(request, exc.response.status_code) from exc
    except OfflineModeIsEnabled as exc:
        raise SourceUnreachableError(
            f"HF_HUB_OFFLINE is set, so the Hub cannot be asked about the {request.repo}; "
            "unset it, or use a cached entry (ensure without --refresh)"
        ) from exc
    except (httpx2.TransportError, LocalEntryNotFoundError) as exc:
        raise _unreachable(request, "the network failed") from exc
    except OSError as exc:
        # huggingface_hub reports a download whose size differs from the listed one as a plain OSError.
        if exc.errno is None and "Consistency check failed" in str(exc):
            raise SizeMismatchError(
                f"a file of the Hugging Face {request.repo} arrived with the wrong size; "
                "nothing was published; retry"
            ) from exc
        raise


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
