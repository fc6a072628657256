"""Hugging Face Hub repositories: ``hf://[datasets/|spaces/]ORG/NAME[@REVISION][?allow=...&ignore=...]``.

A branch or tag is resolved to a commit sha with one request, and an entry holds exactly that
commit. Large LFS files come in parallel byte ranges from the CDN location the Hub gives, under
one connection budget and resumable after a kill (see :mod:`weightcache._transport.http_parts`); the others
with huggingface_hub's own transfer functions (xet when the Hub offers it), in parallel, straight
into the staging area; every LFS file is then checked against
the sha256 the Hub's tree listing gives, and every other file against its git blob id, before
anything is published (huggingface_hub itself checks only sizes). A file whose sha256 is already
in an earlier entry of the same repository is linked from there instead of downloaded.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ..._core.constants import hf_endpoint, hub_timeouts
from ..._core.staging import Staging
from ...errors import InvalidSourceError
from ..base import Plan, Source

if TYPE_CHECKING:
    from ._hf_client import HubClient

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
    points at a mirror or a local fake Hub. ``timeout`` (each request's connect and read timeout)
    and ``deadline`` (resolving a revision, or listing a commit's files) are in seconds; they
    default to ``WEIGHTCACHE_HUB_TIMEOUT`` and ``WEIGHTCACHE_HUB_DEADLINE``, else 30 and 120.
    ``connections`` bounds the connections the large (LFS) files' byte ranges use at once
    (default ``$WEIGHTCACHE_CONNECTIONS``, else 32).
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
        timeout: float | None = None,
        deadline: float | None = None,
        connections: int | None = None,
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
        self._timeouts = (timeout, deadline)
        self._connections = connections

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

    def resolve(self) -> Plan:
        """Ask the Hub which commit the branch or tag points at now (one request)."""
        return self.plan(self._client().resolve())

    def plan(self, version: str) -> Plan:
        """Commit ``version``, with the repository, its type and the revision asked for as its info."""
        info = {"repo_id": self.repo_id, "repo_type": self.repo_type, "requested_revision": self.revision}
        return Plan(version, info)

    def fetch(self, plan: Plan, staging: Staging) -> dict[str, str]:
        """Download the selected files of commit ``plan.version`` in parallel; check them against the Hub.

        Returns ``transfer``: the paths the files took, ``ranges`` (parallel byte ranges from the
        CDN), ``xet`` (hf_xet), ``hub`` (huggingface_hub, for files kept in git).
        """
        client = self._client()
        client.fetch(plan.version, staging)
        return {"transfer": "+".join(sorted(client.transfers))} if client.transfers else {}

    def _client(self) -> HubClient:
        # huggingface_hub takes ~0.3 s to import, and a warm ensure() never talks to the Hub.
        from ._hf_client import HubClient

        default_timeout, default_deadline = hub_timeouts()
        timeout, deadline = self._timeouts
        return HubClient(
            self,
            token=self._token,
            endpoint=self._endpoint,
            timeout=timeout or default_timeout,
            deadline=deadline or default_deadline,
            connections=self._connections,
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
    repo, at, revision = path.partition("@")
    repo_type = "model"
    for name, prefix in (*_TYPE_PREFIXES.items(), ("model", "models/")):
        if prefix and repo.startswith(prefix):
            repo_type, repo = name, repo[len(prefix) :]
            break
    parsed: dict[str, Any] = {
        "repo_id": repo,
        "repo_type": repo_type,
        "revision": unquote(revision) if at else "main",
    }
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        if name not in ("allow", "ignore"):
            raise InvalidSourceError(
                f"{uri!r} has an unknown parameter {name!r}; hf:// URIs take allow= and ignore="
            )
        parsed.setdefault(f"{name}_patterns", []).extend(unquote(item) for item in value.split(","))
    return parsed
