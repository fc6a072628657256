"""Files on web servers: ``https://HOST/PATH[#sha256=HEX][&name=REL][&id=NAME]``, one or several per entry.

Large files come in parallel byte ranges when the server accepts them, and a dropped connection
resumes from the bytes already received (see :mod:`weightcache._transport.download`). With a
``sha256`` the entry is pinned: its version is the hash, a warm call needs no request, and a
mismatch publishes nothing. Without one, the version is what the server says identifies the file
(its ETag, else size and Last-Modified); like the Hub, that is remembered in the store, so warm
calls are offline. Credentials in ``user:pass@``, in secret query parameters
(:data:`~weightcache._transport.redaction.SECRET_PARAMETERS`) or in ``headers=`` are used for the
requests but never appear in a URI, a manifest, a message or a log line.

The identity of a file (what its entry is keyed by) is its whole URL, each credential in it as a
one-way digest: two URLs that differ anywhere, a secret included, never share an entry. A pinned
file (``sha256``) or one named by the user (``#id=NAME``) is identified without its signature
(:data:`~weightcache._transport.redaction.SIGNING_PARAMETERS` and the secret ones), so a pre-signed link
whose signature and date rotate keeps its entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from posixpath import basename
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, unquote, urlsplit

from ..._core.constants import HTTP_RETRIES, HTTP_STALL_SECONDS, HTTP_TIMEOUT_SECONDS
from ..._core.layout import short_hash
from ..._core.staging import Staging
from ..._transport.fsutil import safe_relpath
from ..._transport.http_parts import FileJob
from ..._transport.parallel import run_parallel
from ..._transport.redaction import is_signing_parameter, redact_url, secret_digest, split_userinfo
from ...errors import InvalidSourceError, SourceChangedError
from ..base import Plan, Source

if TYPE_CHECKING:
    from ..._transport.download import HTTPDownloader, Probe

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")

#: What a redacted URL starts a removed secret with (``<redacted>``, or ``<redacted:DIGEST>``).
_REDACTED_MARK = "<redacted"

#: Longest file name component and path most filesystems accept (bytes, as ext4 and XFS count).
_NAME_MAX, _PATH_MAX = 255, 4096

#: Separates the files of a several-file URI (``|`` never appears unescaped in a URL).
URI_SEPARATOR = " | "


@dataclass(frozen=True)
class _RemoteFile:
    name: str  # path inside the entry
    url: str  # what is fetched: may carry credentials, so never shown
    label: str  # the URL with credentials removed: what messages show
    sha256: str | None
    id: str | None  # the user's name for what this URL serves

    @property
    def stable(self) -> bool:
        """Whether something other than the URL's query says what the bytes are (a hash, a name)."""
        return self.sha256 is not None or self.id is not None

    def uri(self, *, with_hash: bool) -> str:
        """This file's URL, credentials shown as digests (or removed if stable), with its fragment."""
        return _with_fragment(self.label if self.stable else _digested(self.url), self._params(with_hash))

    def identity(self) -> str:
        """What keys this file's entry: the whole URL with digests, or without its signature if stable."""
        if not self.stable:
            return self.uri(with_hash=False)
        return _with_fragment(_unsigned(self.label), self._params(with_hash=False))

    def _params(self, with_hash: bool) -> list[str]:
        params = [f"sha256={self.sha256}"] if with_hash and self.sha256 else []
        if self.name != _url_basename(self.url):
            params.append(f"name={quote(self.name, safe='/')}")
        if self.id is not None:
            params.append(f"id={quote(self.id, safe='')}")
        return params


class URLSource(Source):
    """One URL, or several (``{relative_path: url}``) gathered into one entry.

    ``URLSource("https://example.com/sam2.pt", sha256="ab12...")``, or the URI
    ``https://example.com/sam2.pt#sha256=ab12...``. ``sha256`` is a hex string for one URL, a
    ``{relative_path: hex}`` mapping for several. ``id`` names what a pre-signed URL serves, so
    that its rotating signature does not make a new entry (a string, or ``{relative_path: id}``).
    ``headers`` are sent with every request (an ``Authorization`` header is dropped on redirects
    to another host). ``connections`` (the connections open at once for all the files; default
    ``$WEIGHTCACHE_CONNECTIONS``, else 32), ``part_bytes`` (fixed byte-range size; default: sized
    from the download), ``timeout`` (seconds without bytes), ``stall_timeout`` (seconds to receive
    at least 1 MiB) and ``retries`` (attempts without progress) tune the downloads.
    """

    scheme = "https"
    offline_first = True

    def __init__(
        self,
        url: str | Mapping[str, str],
        sha256: str | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        id: str | Mapping[str, str] | None = None,
        connections: int | None = None,
        part_bytes: int | None = None,
        timeout: float = HTTP_TIMEOUT_SECONDS,
        stall_timeout: float = HTTP_STALL_SECONDS,
        retries: int = HTTP_RETRIES,
    ) -> None:
        if isinstance(url, str):
            if not isinstance(sha256, (str, type(None))) or not isinstance(id, (str, type(None))):
                raise InvalidSourceError("sha256 and id of a single URL are strings, not mappings")
            files = [_remote_file(url, name=None, sha256=sha256, id=id)]
        else:
            hashes, ids = _per_file("sha256", sha256), _per_file("id", id)
            files = [
                _remote_file(text, name=name, sha256=hashes.pop(name, None), id=ids.pop(name, None))
                for name, text in url.items()
            ]
            if hashes or ids:
                unknown = ", ".join(sorted({*hashes, *ids}))
                raise InvalidSourceError(f"sha256 or id names files that are not among the URLs: {unknown}")
        if not files:
            raise InvalidSourceError("URLSource needs at least one URL")
        _check_names([file.name for file in files])
        self._files = sorted(files, key=lambda file: file.name)
        self._settings: dict[str, Any] = {
            "headers": dict(headers or {}),
            "connections": connections,
            "part_bytes": part_bytes,
            "timeout": timeout,
            "stall_timeout": stall_timeout,
            "retries": retries,
        }

    @classmethod
    def from_uri(cls, uri: str) -> URLSource:
        """Parse ``https://HOST/PATH[#sha256=HEX&name=REL]``, several joined by `` | ``."""
        parts = [part.strip() for part in uri.split("|")]
        if len(parts) == 1:
            return cls(parts[0])
        return cls({_remote_file(part, name=None, sha256=None, id=None).name: part for part in parts})

    @property
    def uri(self) -> str:
        """The URL(s), credentials as digests, with ``#sha256=`` when known, ``name=``/``id=`` when given."""
        return URI_SEPARATOR.join(file.uri(with_hash=True) for file in self._files)

    @property
    def identity(self) -> str:
        """What entries are keyed by: each whole URL (see the module's docstring), without the hashes."""
        return URI_SEPARATOR.join(file.identity() for file in self._files)

    @property
    def slug(self) -> str:
        """The (first) file's name."""
        return basename(self._files[0].name)

    def pinned_version(self) -> str | None:
        """``sha256-HEX`` when every file's SHA-256 is given (no request needed), else ``None``."""
        hashes = [file.sha256 for file in self._files]
        if None in hashes:
            return None
        if len(hashes) == 1:
            return f"sha256-{hashes[0]}"
        return "sha256-" + short_hash("\n".join(f"{file.name} {file.sha256}" for file in self._files), 32)

    def resolve(self) -> Plan:
        """Ask the server(s) for each file's ETag (else size and Last-Modified), one small request each.

        The plan carries those answers, so the fetch that follows a cold ``ensure()`` does not
        ask again (the ETag of every download response is still compared with them).
        """
        with self._downloader() as downloader:
            probes = self._probe_all(downloader)
        return Plan(_version(self._files, probes), self._info(probes), MappingProxyType(probes))

    def fetch(self, plan: Plan, staging: Staging) -> dict[str, str]:
        """Download every file into ``staging``, checking sizes, hashes, and that nothing changed.

        Returns the ETag and Last-Modified each file was fetched with (keys end in ``:NAME`` if several).
        """
        with self._downloader() as downloader:
            probed = self._probed(plan)
            probes = cast("Mapping[str, Probe]", plan.detail) if probed else self._probe_all(downloader)
            if self.pinned_version() is None and _version(self._files, probes) != plan.version:
                raise SourceChangedError(f"{self.uri} changed on the server since it was examined; run again")
            staging.plan({file.name: probes[file.name].size for file in self._files})
            jobs = []
            for file in self._files:
                probe = probes[file.name]
                reusable = file.sha256 is not None and probe.size is not None
                if reusable and staging.try_reuse(file.name, sha256=file.sha256, size=probe.size) is not None:
                    continue
                jobs.append(FileJob(file.url, file.label, file.name, probe, file.sha256))
            downloader.download_all(jobs, staging)
        return self._info(probes)

    def _probed(self, plan: Plan) -> bool:
        """Whether ``plan`` carries an answer for each of this source's files (it came from ``resolve``)."""
        return isinstance(plan.detail, Mapping) and set(plan.detail) == {file.name for file in self._files}

    def _info(self, probes: Mapping[str, Probe]) -> dict[str, str]:
        info = {}
        for name, probe in probes.items():
            suffix = "" if len(self._files) == 1 else f":{name}"
            for key, value in (("etag", probe.etag), ("last_modified", probe.last_modified)):
                if value:
                    info[key + suffix] = value
        return info

    def _probe_all(self, downloader: HTTPDownloader) -> dict[str, Probe]:
        # One small request per file, all at once: a many-file entry waits for one round trip.
        probes = run_parallel(
            [partial(downloader.probe, file.url, file.label) for file in self._files],
            threads=downloader.connections,
        )
        return {file.name: probe for file, probe in zip(self._files, probes, strict=True)}

    def _downloader(self) -> HTTPDownloader:
        # httpx2 takes ~0.2 s to import, and a warm ensure() sends no request.
        from ..._transport.download import HTTPDownloader

        return HTTPDownloader(**self._settings)


def _remote_file(text: str, *, name: str | None, sha256: str | None, id: str | None) -> _RemoteFile:
    userinfo, _ = split_userinfo(text.strip())
    if "#" in userinfo or "?" in userinfo:
        raise InvalidSourceError(
            f"the user:password in {redact_url(text.strip())} holds an unencoded '#' or '?'; "
            "percent-encode it (%23, %3F)"
        )
    url, _, fragment = text.strip().partition("#")
    params = _fragment(text, fragment)
    for key, given, same in (("sha256", sha256, str.lower), ("id", id, str)):
        if given is not None and same(params.get(key, given)) != same(given):
            raise InvalidSourceError(f"{redact_url(url)} is given two different {key} values; keep one")
    sha256 = sha256 or params.get("sha256")
    id = id or params.get("id")
    if sha256 is not None and not _SHA256.match(sha256):
        raise InvalidSourceError(f"sha256 of {redact_url(url)} is not 64 hex digits; copy the full hash")
    if id is not None and not id.strip():
        raise InvalidSourceError(f"the id of {redact_url(url)} is empty; name what the URL serves")
    if not _is_http_url(url):
        raise InvalidSourceError(f"{redact_url(url)!r} is not a valid http:// or https:// URL")
    if _REDACTED_MARK in url:
        raise InvalidSourceError(
            f"{redact_url(url)} had its credentials removed when it was recorded; pass the URL with them"
        )
    relpath = safe_relpath(name or params.get("name") or _default_name(url))
    return _RemoteFile(relpath, url, redact_url(url), sha256.lower() if sha256 else None, id)


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError:  # that, or an unclosed IPv6 bracket
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _fragment(text: str, fragment: str) -> dict[str, str]:
    params = {}
    for pair in fragment.split("&") if fragment else []:
        key, _, value = pair.partition("=")
        if key not in ("sha256", "name", "id"):
            raise InvalidSourceError(
                f"{redact_url(text)} has an unknown #{key}; URL fragments may give sha256=, name= and id="
            )
        params[key] = unquote(value)
    return params


def _per_file(what: str, value: str | Mapping[str, str] | None) -> dict[str, str]:
    if isinstance(value, str):
        raise InvalidSourceError(f"{what} of several URLs is a {{relative_path: {what}}} mapping")
    return dict(value or {})


def _check_names(names: list[str]) -> None:
    """Refuse names that collide, or that no filesystem can hold, before anything is fetched."""
    if len(set(names)) != len(names):
        raise InvalidSourceError(
            f"two URLs would be saved under the same name in {names}; name them in a mapping"
        )
    for name in names:
        if len(name.encode()) > _PATH_MAX or any(len(part.encode()) > _NAME_MAX for part in name.split("/")):
            raise InvalidSourceError(
                f"the file name {name[:60]!r}... is longer than a filesystem allows ({_NAME_MAX} bytes per "
                f"part, {_PATH_MAX} in all); choose a shorter one with #name= or a mapping"
            )
    folders = {name[:index] for name in names for index, char in enumerate(name) if char == "/"}
    clash = sorted(folders.intersection(names))
    if clash:
        raise InvalidSourceError(
            f"{clash[0]!r} would be both a file and a folder of this entry; rename one of the URLs' files"
        )


def _digested(url: str) -> str:
    """``url`` with each credential (``user:pass``, a secret query value) replaced by its digest."""
    userinfo, _ = split_userinfo(url)
    shown = redact_url(url, replace=lambda value: f"{_REDACTED_MARK}:{secret_digest(value)}>")
    if not userinfo:
        return shown
    scheme, _, rest = shown.partition("://")
    return f"{scheme}://{_REDACTED_MARK}:{secret_digest(userinfo)}>@{rest}"


def _unsigned(url: str) -> str:
    """``url`` without the query parameters that change when a link is signed again."""
    base, _, query = url.partition("?")
    kept = [pair for pair in query.split("&") if pair and not is_signing_parameter(pair.partition("=")[0])]
    return base + ("?" + "&".join(kept) if kept else "")


def _with_fragment(url: str, params: list[str]) -> str:
    return url + ("#" + "&".join(params) if params else "")


def _url_basename(url: str) -> str:
    return unquote(basename(urlsplit(url).path))


def _default_name(url: str) -> str:
    name = _url_basename(url)
    if not name:
        raise InvalidSourceError(
            f"{redact_url(url)} names no file; add #name=FILE or use a {{name: url}} mapping"
        )
    return name


def _version(files: list[_RemoteFile], probes: Mapping[str, Probe]) -> str:
    """The version of unpinned files: a digest of their validators (ETag, else size and Last-Modified)."""
    return "http-" + short_hash("\n".join(f"{file.name} {probes[file.name].validator}" for file in files), 24)
