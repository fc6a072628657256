"""The source registry: a URI scheme names a source class, imported only when first used.

The built-in sources are listed in :data:`_SOURCES`. Another package adds a source with an entry
point in the :data:`ENTRY_POINT_GROUP` group, named by its scheme, whose value is the class
(``acme = acme_weights:AcmeSource``); entry points are read the first time a URI names a scheme
not known otherwise, so a program that uses only built-in schemes never scans them. Code can
also call :func:`register_source`. As fsspec's ``register_implementation`` does
(fsspec/registry.py), a scheme already known is replaced only when asked (``clobber=True``).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import SchemeTakenError, SourcePluginError, UnknownSchemeError
from ..providers.base import Source

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

#: The entry-point group third-party packages declare their sources in (name: scheme, value: class).
ENTRY_POINT_GROUP = "weightcache.sources"

#: scheme -> "module:Class" (each class implements :meth:`Source.from_uri`).
_SOURCES: dict[str, str] = {
    "dir": "weightcache.providers.sources.image_dir:ImageDirSource",
    "hf": "weightcache.providers.sources.hf:HFSource",
    "http": "weightcache.providers.sources.url:URLSource",
    "https": "weightcache.providers.sources.url:URLSource",
}

SourceFactory = Callable[[str], Source]
SourceLike = Source | str | os.PathLike[str]

_FACTORIES: dict[str, SourceFactory] = {}

#: scheme -> entry point, once the entry points have been read.
_PLUGINS: dict[str, EntryPoint] | None = None

logger = logging.getLogger(__name__)


def register_source(scheme: str, factory: type[Source] | SourceFactory, *, clobber: bool = False) -> None:
    """Make ``scheme://...`` URIs build sources with ``factory`` (a Source class, or ``uri -> Source``).

    Raises :class:`SchemeTakenError` if a source already handles ``scheme`` (a built-in one, or
    one registered before), unless ``clobber`` is true. A scheme registered here takes
    precedence over an entry point of the same name.
    """
    name = scheme.lower()
    if not clobber and (name in _SOURCES or name in _FACTORIES):
        raise SchemeTakenError(
            f"a source already handles {name}:// URIs; pass clobber=True to replace it, or use another scheme"
        )
    _FACTORIES[name] = factory.from_uri if isinstance(factory, type) else factory


def schemes() -> list[str]:
    """Every scheme a URI may use (reads the entry points)."""
    return sorted(set(_SOURCES) | set(_FACTORIES) | set(_plugins()))


def parse_source(value: SourceLike) -> Source:
    """Turn a source object, a URI or a plain filesystem path into a :class:`Source`."""
    if isinstance(value, Source):
        return value
    text = os.fspath(value)
    if "://" not in text:
        from ..providers.sources.image_dir import ImageDirSource

        return ImageDirSource(text)
    scheme = text.split("://", 1)[0].lower()
    return _factory(scheme, text)(text)


def _factory(scheme: str, uri: str) -> SourceFactory:
    if scheme in _FACTORIES:
        return _FACTORIES[scheme]
    if scheme in _SOURCES:
        module_name, class_name = _SOURCES[scheme].split(":")
        source_class = getattr(importlib.import_module(module_name), class_name)
        return source_class.from_uri  # type: ignore[no-any-return]
    plugin = _plugins().get(scheme)
    if plugin is None:
        known = ", ".join(f"{name}://" for name in schemes())
        shown = uri.split("://", 1)[0]
        raise UnknownSchemeError(
            f"unknown source scheme {shown!r}; use one of {known} or a plain filesystem path"
        )
    return _load(plugin)


def _plugins() -> dict[str, EntryPoint]:
    """The ``weightcache.sources`` entry points by scheme, read once; built-in schemes stay built in."""
    global _PLUGINS
    if _PLUGINS is None:
        # Imported here: only a URI whose scheme is known no other way needs it (~15 ms to import).
        from importlib.metadata import entry_points

        found: dict[str, EntryPoint] = {}
        for point in entry_points(group=ENTRY_POINT_GROUP):
            name = point.name.lower()
            if name in _SOURCES or name in found:
                logger.warning(
                    "ignoring the %s entry point %s = %s: %s:// is taken",
                    ENTRY_POINT_GROUP,
                    name,
                    point.value,
                    name,
                )
                continue
            found[name] = point
        _PLUGINS = found
    return _PLUGINS


def _load(point: EntryPoint) -> SourceFactory:
    """The factory an entry point names: a Source class's ``from_uri``, or a callable ``uri -> Source``."""
    try:
        loaded = point.load()
    except Exception as exc:  # an installed package's import failing is its own bug, of any kind
        raise SourcePluginError(
            f"the source for {point.name}:// ({point.value}) could not be imported "
            f"({type(exc).__name__}: {exc}); reinstall or fix the package that provides it"
        ) from exc
    if isinstance(loaded, type) and issubclass(loaded, Source):
        return loaded.from_uri
    if not callable(loaded):
        raise SourcePluginError(
            f"the {ENTRY_POINT_GROUP} entry point {point.name} = {point.value} is not a Source class"
        )
    return loaded  # type: ignore[no-any-return]
