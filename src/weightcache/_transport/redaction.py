"""Keeping credentials out of what weightcache shows: URIs, manifests, messages and log lines.

A URL may carry credentials in ``user:pass@`` or in its query (``?token=...``, the signature of a
pre-signed S3 or GCS link). :func:`redact_url` drops the first and replaces the value of every
query parameter named in :data:`SECRET_PARAMETERS` with :data:`REDACTED`. Names are compared
whole, ignoring case, after percent-decoding (``%74oken`` is ``token``): other parameters stay,
because they name different files (``?key=models/a.bin`` vs ``?key=models/b.bin``).

Redaction is for *showing* a URL. What identifies a URL source is the whole URL, with each secret
value present as a one-way digest (:func:`secret_digest`); see :mod:`weightcache.providers.sources.url`.

:func:`install_log_redaction` rewrites every URL in the log records of weightcache and of the HTTP
stack it drives (httpx2, httpcore2, huggingface_hub), whichever logger or handler shows them.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

#: What replaces a secret query value. ``<`` and ``>`` never appear unescaped in a real URL, so
#: a URI holding this marker is recognisably one whose secrets were removed.
REDACTED = "<redacted>"

#: Query parameters whose values are credentials, lower case, compared with whole decoded names.
#: Tokens (OAuth, API keys, JWTs), passwords, and the signatures and credentials of pre-signed
#: S3, GCS, Azure SAS and CloudFront links. ``key`` is deliberately absent: object stores and
#: download endpoints use it to name the file.
SECRET_PARAMETERS = frozenset(
    {
        "token", "access_token", "id_token", "refresh_token", "auth", "auth_token", "authorization",
        "api_key", "apikey", "api-key", "x-api-key", "private_token", "session_token", "jwt",
        "password", "pass", "passwd", "pwd", "secret", "client_secret", "code", "hmac",
        "sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
        "x-goog-signature", "x-goog-credential",
    }
)  # fmt: skip

#: Query parameters that change each time a link is signed again without being secret (dates,
#: expiries, policies of S3, GCS, Azure SAS and CloudFront links), lower case. A link pinned by
#: its hash or named by the user is identified without them and without the secret ones.
SIGNING_PARAMETERS = frozenset(
    {
        "x-amz-date", "x-amz-expires", "x-amz-algorithm", "x-amz-signedheaders",
        "x-goog-date", "x-goog-expires", "x-goog-algorithm", "x-goog-signedheaders",
        "expires", "policy", "key-pair-id", "se", "st", "sv", "sp", "sr", "spr", "skoid", "sktid",
        "skt", "ske", "sks", "skv",
    }
)  # fmt: skip

#: Loggers whose records :func:`install_log_redaction` rewrites (and their children).
REDACTED_LOGGERS = ("weightcache", "httpx2", "httpcore2", "httpx", "httpcore", "huggingface_hub", "urllib3")

#: A URL inside free text (a log line, a header repr): up to whitespace, a quote or an angle bracket.
_URL_IN_TEXT = re.compile(r"""(?i)\bhttps?://[^\s'"<>]+""")

#: Rounds of PBKDF2 for a secret's digest: a guessable password costs a guesser time per try.
_DIGEST_ROUNDS = 20_000


def is_secret_parameter(name: str) -> bool:
    """Whether the query parameter ``name`` (raw, possibly percent-encoded) carries a credential."""
    return unquote_plus(name).strip().lower() in SECRET_PARAMETERS


def is_signing_parameter(name: str) -> bool:
    """Whether the query parameter ``name`` belongs to a link's signature (secret or not)."""
    decoded = unquote_plus(name).strip().lower()
    return decoded in SECRET_PARAMETERS or decoded in SIGNING_PARAMETERS


def split_userinfo(url: str) -> tuple[str, str]:
    """``(userinfo, url_without_it)``; the userinfo ends at the last ``@`` before the path.

    A password holding an unencoded ``#`` or ``?`` ends the host early for a standard parser,
    which would show the rest of the password as a fragment or a query; this never does.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", url
    slash = rest.find("/")
    authority = rest if slash < 0 else rest[:slash]
    userinfo, at, _host = authority.rpartition("@")
    if not at:
        return "", url
    return userinfo, f"{scheme}://{rest[len(userinfo) + 1 :]}"


def redact_url(url: str, *, replace: Callable[[str], str] = lambda _value: REDACTED) -> str:
    """``url`` without ``user:pass@``, each secret query value replaced by ``replace(value)``."""
    url = split_userinfo(url)[1]
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket: show nothing that could hold a secret
        return url.partition("://")[0] + "://" + REDACTED
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        name, equals, value = pair.partition("=")
        pairs.append(f"{name}={replace(value)}" if equals and is_secret_parameter(name) else pair)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(pairs), parts.fragment))


@functools.lru_cache(maxsize=256)
def secret_digest(secret: str) -> str:
    """A short one-way digest of ``secret`` that tells two secrets apart without revealing either."""
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), b"weightcache url identity", _DIGEST_ROUNDS)
    return digest.hex()[:16]


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (log messages, header dumps)."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is the logging module's to report, not ours
        return
    if "://" in message:
        record.msg, record.args = redact_text(message), None


def _covered(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in REDACTED_LOGGERS)


_installed = False


def install_log_redaction() -> None:
    """Redact URLs in every record of :data:`REDACTED_LOGGERS` (and child loggers) from now on.

    Done in the log-record factory, not as a logger filter: a filter on ``httpcore2`` does not
    see records of ``httpcore2.http11``, and handlers are the application's. Idempotent.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _covered(record.name):
            _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
