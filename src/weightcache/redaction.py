"""Keeping credentials out of what weightcache shows: URIs, manifests, messages and log lines.

A URL may carry credentials in ``user:pass@`` or in its query (``?token=...``, the signature of a
pre-signed S3 or GCS link). :func:`redact_url` drops the first and replaces the values of
query parameters whose names look secret with :data:`REDACTED`. Other parameters stay: they can
name different files (``?file=a`` vs ``?file=b``).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

#: What replaces a secret query value. ``<`` and ``>`` never appear unescaped in a real URL, so
#: a URI holding this marker is recognisably one whose secrets were removed.
REDACTED = "<redacted>"

_SECRET_NAME = re.compile(
    r"token|sig|secret|passw|pwd|key|auth|credential|session|^x-amz-|^x-goog-|^code$", re.IGNORECASE
)


def is_secret_parameter(name: str) -> bool:
    """Whether a query parameter named ``name`` probably carries a credential."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``url`` without ``user:pass@`` and with secret-looking query values replaced by :data:`REDACTED`."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        name, equals, _value = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if equals and is_secret_parameter(name) else pair)
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(pairs), parts.fragment))


class RedactURLsFilter(logging.Filter):
    """Redacts URLs passed as arguments to log records (httpx2 logs every request's full URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite URL-looking arguments of ``record``; never drops it."""
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_if_url(arg) for arg in record.args)
        return True


def _redact_if_url(value: object) -> object:
    """A URL argument (a string or an HTTP client's URL object) redacted; anything else unchanged."""
    if isinstance(value, (int, float)) or value is None:
        return value
    text = str(value)
    return redact_url(text) if text.startswith(("http://", "https://")) else value


def redact_http_client_logs(logger_name: str = "httpx2") -> None:
    """Install :class:`RedactURLsFilter` on ``logger_name`` once."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(existing, RedactURLsFilter) for existing in logger.filters):
        logger.addFilter(RedactURLsFilter())
