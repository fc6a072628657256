"""A small Hugging Face Hub on 127.0.0.1 that the real ``huggingface_hub`` client talks to.

It speaks the routes ``huggingface_hub`` uses to resolve a revision and download a snapshot,
with the headers it reads: ``/api/{type}s/{repo}/revision/{rev}`` (the commit sha),
``/api/{type}s/{repo}/tree/{rev}`` (paginated listing with git oids and LFS sha256s), and
``/{repo}/resolve/{rev}/{path}`` (``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``/``X-Linked-Size``,
LFS files redirected to a CDN on another port, ``Range``). Private and gated repositories
answer 401/403 with the ``X-Error-Code`` the client turns into its own errors.

::

    from weightcache.testing import FakeHub

    with FakeHub() as hub:
        sha = hub.add_repo("acme/tiny", {"config.json": b"{}", "model.safetensors": weights})
        api = HfApi(endpoint=hub.url)               # or HF_ENDPOINT=hub.url before importing
        hub.commit("acme/tiny", {"config.json": b'{"v": 2}'})   # moves main
        hub.count()                                 # requests received (Hub and CDN)

``hub.cdn`` is the :class:`~weightcache.testing.FileServer` serving file contents: its faults
(drop, throttle, corrupt, fail) apply to downloads; :meth:`FakeHub.cdn_path` names a file there.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import parse_qs, quote, unquote

from ._hub_repos import Blob, Repo
from ._server import BackgroundServer, QuietHandler, ServedRequest, ServerContext
from .file_server import FileServer

_API_ROUTE = re.compile(r"^/api/(models|datasets|spaces)/(.+?)(?:/(revision|tree)/([^/]+)(?:/(.*))?)?$")
_RESOLVE_ROUTE = re.compile(r"^/(?:(datasets|spaces)/)?(.+?)/resolve/([^/]+)/(.+)$")
_URL_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", None: "model"}


class _HubError(Exception):
    def __init__(
        self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class _HubHandler(QuietHandler):
    def do_GET(self) -> None:
        """Answer a GET (http.server's hook)."""
        self.owner.handle(self)

    def do_HEAD(self) -> None:
        """Answer a HEAD (http.server's hook)."""
        self.owner.handle(self)


class FakeHub(ServerContext):
    """A fake Hub (plus its CDN) on 127.0.0.1; use as a context manager.

    ``tree_page_size`` sets how many entries one tree page holds (the Hub pages at 1000).
    Set :attr:`failing` to an HTTP status to make every Hub request fail with it (an outage).
    """

    def __init__(self, *, tree_page_size: int = 1000) -> None:
        self.tree_page_size = tree_page_size
        #: When set to a status (e.g. 503), every Hub request answers with it.
        self.failing: int | None = None
        #: Every request the Hub itself received (the CDN keeps its own in ``cdn.requests``).
        self.requests: list[ServedRequest] = []
        self._repos: dict[tuple[str, str], Repo] = {}
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self.cdn = FileServer()
        self._server = BackgroundServer(_HubHandler, self)

    @property
    def url(self) -> str:
        """The endpoint to give ``huggingface_hub`` (``endpoint=`` or ``HF_ENDPOINT``)."""
        return self._server.url

    # --- content and access -------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        repo_type: str = "model",
        private: bool = False,
        gated: bool = False,
        branch: str = "main",
    ) -> str:
        """Create a repository holding ``files`` on ``branch``; return the commit sha."""
        with self._lock:
            self._repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private=private, gated=gated)
        return self.commit(repo_id, files, repo_type=repo_type, branch=branch)

    def commit(
        self,
        repo_id: str,
        changes: dict[str, bytes | None],
        *,
        repo_type: str = "model",
        branch: str = "main",
    ) -> str:
        """Commit ``changes`` (``None`` deletes a file) on ``branch``, moving it; return the new sha."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            sha = repo.commit(changes, branch=branch)
            blobs = list(repo.commits[sha].values())
        for blob in blobs:
            if not self.cdn.serves(blob.cdn_path):
                self.cdn.add(blob.cdn_path, blob.data, etag=f'"{blob.sha256 or blob.oid}"')
        return sha

    def tag(self, repo_id: str, tag: str, revision: str, *, repo_type: str = "model") -> None:
        """Point ``tag`` at ``revision`` (a branch or sha)."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            repo.refs[tag] = repo.resolve(revision) or revision

    def grant(self, repo_id: str, token: str, *, repo_type: str = "model") -> None:
        """Let ``token`` read a private or gated repository (and make it a valid token)."""
        with self._lock:
            self._tokens.add(token)
            self._repos[(repo_type, repo_id)].readers.add(token)

    def add_token(self, token: str) -> None:
        """Make ``token`` valid without granting it any private or gated repository."""
        with self._lock:
            self._tokens.add(token)

    def cdn_path(self, repo_id: str, path: str, *, revision: str = "main", repo_type: str = "model") -> str:
        """Where :attr:`cdn` serves ``path`` as of ``revision`` (to inject faults there)."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return repo.commits[repo.resolve(revision) or revision][path].cdn_path

    def corrupt(self, repo_id: str, path: str, *, offset: int = 0, repo_type: str = "model") -> None:
        """Serve ``path`` with one byte flipped, keeping its size (what the client alone cannot notice)."""
        self.cdn.corrupt(self.cdn_path(repo_id, path, repo_type=repo_type), offset)

    def count(self) -> int:
        """Requests received by the Hub and its CDN together."""
        with self._lock:
            return len(self.requests) + self.cdn.count()

    # --- serving ------------------------------------------------------------------------

    def handle(self, handler: QuietHandler) -> None:
        """Record and answer one request."""
        request = handler.served_request()
        with self._lock:
            self.requests.append(request)
        try:
            if self.failing is not None:
                raise _HubError(self.failing, None, "the Hub is failing on purpose")
            api, resolve = _API_ROUTE.match(request.path), _RESOLVE_ROUTE.match(request.path)
            if api is not None and handler.command == "GET":
                self._api(handler, request, *api.groups())
            elif resolve is not None:
                self._resolve(handler, request, *resolve.groups())
            else:
                raise _HubError(404, None, "no such route in the fake Hub")
        except _HubError as error:
            headers = {**error.headers, "X-Error-Message": error.message, "Content-Type": "application/json"}
            if error.code:
                headers["X-Error-Code"] = error.code
            handler.send_simple(error.status, headers, json.dumps({"error": error.message}).encode())

    def _api(
        self,
        handler: QuietHandler,
        request: ServedRequest,
        url_type: str,
        repo_id: str,
        operation: str | None,
        revision: str | None,
        path: str | None,
    ) -> None:
        repo = self._readable(request, _URL_TYPES[url_type], repo_id, files=False)
        sha = self._commit_sha(repo, unquote(revision or "main"))
        if operation == "tree":
            self._tree(handler, request, repo, sha, unquote(path or ""))
            return
        with self._lock:
            names = sorted(repo.commits[sha])
        info = {
            "_id": repo_id,
            "id": repo_id,
            "sha": sha,
            "private": repo.private,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "tags": [],
            "siblings": [{"rfilename": name} for name in names],
        }
        handler.send_simple(200, {"Content-Type": "application/json"}, json.dumps(info).encode())

    def _tree(self, handler: QuietHandler, request: ServedRequest, repo: Repo, sha: str, prefix: str) -> None:
        params = parse_qs(request.query)
        recursive = params.get("recursive", ["false"])[0].lower() == "true"
        cursor = int(params.get("cursor", ["0"])[0])
        with self._lock:
            entries = repo.tree(sha, prefix, recursive=recursive)
        page = entries[cursor : cursor + self.tree_page_size]
        headers = {"Content-Type": "application/json"}
        if cursor + self.tree_page_size < len(entries):
            query = f"recursive={str(recursive).lower()}&expand=false&cursor={cursor + self.tree_page_size}"
            headers["Link"] = f'<{self.url}{quote(request.path)}?{query}>; rel="next"'
        handler.send_simple(200, headers, json.dumps(page).encode())

    def _resolve(
        self,
        handler: QuietHandler,
        request: ServedRequest,
        url_type: str | None,
        repo_id: str,
        revision: str,
        path: str,
    ) -> None:
        repo = self._readable(request, _URL_TYPES[url_type], repo_id, files=True)
        sha = self._commit_sha(repo, unquote(revision))
        with self._lock:
            blob: Blob | None = repo.commits[sha].get(unquote(path))
        if blob is None:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist at {sha}", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{blob.oid}"'}
        if blob.sha256 is None:
            self.cdn.respond(handler, blob.cdn_path, headers=headers)
            return
        headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(len(blob.data))})
        handler.send_simple(302, {**headers, "Location": self.cdn.url_for(blob.cdn_path)})

    def _readable(self, request: ServedRequest, repo_type: str, repo_id: str, *, files: bool) -> Repo:
        """The repository, if this request may read it (``files``: download, where gating applies)."""
        authorization = request.headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            valid = token in self._tokens
        if token is not None and not valid:
            raise _HubError(401, None, "Invalid credentials in Authorization header")
        if repo is None or (repo.private and token not in repo.readers):
            raise _HubError(401 if token is None else 404, "RepoNotFound", "Repository not found")
        if repo.gated and files and token not in repo.readers:
            message = (
                f"Access to model {repo_id} is restricted. You must have access to it and be authenticated."
            )
            raise _HubError(401 if token is None else 403, "GatedRepo", message)
        return repo

    def _commit_sha(self, repo: Repo, revision: str) -> str:
        with self._lock:
            sha = repo.resolve(revision)
        if sha is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return sha

    def close(self) -> None:
        """Stop the Hub and its CDN."""
        self._server.close()
        self.cdn.close()
