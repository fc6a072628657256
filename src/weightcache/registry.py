"""The source registry: a URI scheme names a source class, imported only when first used.

Adding a source is one module in ``providers/`` and one line in :data:`_SOURCES`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from .errors import UnknownSchemeError
from .providers.base import Source

#: scheme -> "module:Class" (each class has a ``from_uri`` classmethod).
_SOURCES: dict[str, str] = {
    "dir": "weightcache.providers.image_dir:ImageDirSource",
    "hf": "weightcache.providers.hf:HFSource",
    "http": "weightcache.providers.url:URLSource",
    "https": "weightcache.providers.url:URLSource",
}

_FACTORIES: dict[str, Callable[[str], Source]] = {}

SourceLike = Source | str | os.PathLike[str]


def register_source(scheme: str, factory: Callable[[str], Source]) -> None:
    """Make ``scheme://...`` URIs build sources with ``factory(uri)`` (for third-party sources)."""
    _FACTORIES[scheme.lower()] = factory


def schemes() -> list[str]:
    """Every scheme a URI may use."""
    return sorted(set(_SOURCES) | set(_FACTORIES))


def parse_source(value: SourceLike) -> Source:
    """Turn a source object, a URI or a plain filesystem path into a :class:`Source`."""
    if isinstance(value, Source):
        return value
    text = os.fspath(value)
    if "://" not in text:
        from .providers.image_dir import ImageDirSource

        return ImageDirSource(text)
    scheme = text.split("://", 1)[0].lower()
    return _factory(scheme, text)(text)


def _factory(scheme: str, uri: str) -> Callable[[str], Source]:
    if scheme in _FACTORIES:
        return _FACTORIES[scheme]
    if scheme not in _SOURCES:
        known = ", ".join(f"{name}://" for name in schemes())
        shown = uri.split("://", 1)[0]
        raise UnknownSchemeError(
            f"unknown source scheme {shown!r}; use one of {known} or a plain filesystem path"
        )
    module_name, class_name = _SOURCES[scheme].split(":")
    source_class = getattr(importlib.import_module(module_name), class_name)
    return source_class.from_uri  # type: ignore[no-any-return]
