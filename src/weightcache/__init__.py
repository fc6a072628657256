"""weightcache: model weights on a persistent volume, fetched once, verified, crash-safe.

::

    from weightcache import WeightCache, LocalStore
    cache = WeightCache(LocalStore("/cache"))
    entry = cache.ensure("dir:///tmp/initial_weights", link_to="/root/data/weights")
    entry.path, entry.hit, entry.manifest
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from ._core.gc import GcReport
    from ._core.registry import parse_source, register_source
    from ._core.verify import VerifyReport
    from ._hf_cache.adopt import AdoptReport, adopt_hf_cache
    from .cache import SourceStatus, WeightCache
    from .entry import Entry
    from .errors import (
        ChecksumMismatchError,
        CommitError,
        EmptySourceError,
        EntryInUseError,
        EntryNotFoundError,
        IntegrityError,
        InvalidSourceError,
        LinkError,
        LoadError,
        LockTimeoutError,
        ManifestError,
        SafetensorsFormatError,
        SchemeTakenError,
        SizeMismatchError,
        SourceAuthError,
        SourceChangedError,
        SourceError,
        SourceNotFoundError,
        SourcePluginError,
        SourceUnreachableError,
        StoreError,
        StoreFullError,
        StoreNotWritableError,
        UnknownSchemeError,
        UnsafePathError,
        WeightCacheError,
        WeightFileNotFoundError,
    )
    from .manifest import FileRecord, Manifest
    from .progress import ProgressEvent
    from .providers.base import Plan, Source, Store
    from .providers.sources.hf import HFSource
    from .providers.sources.image_dir import ImageDirSource
    from .providers.sources.url import URLSource
    from .providers.stores.local_store import LocalStore
    from .providers.stores.modal_volume import LeaseSettings, ModalVolumeStore

# Where each public name lives: imported on first use (PEP 562), so `import weightcache` costs
# milliseconds and a process imports only what it touches (a warm `ensure()` needs no HTTP, Modal
# or CLI code).
_LAZY = {
    "SourceStatus": ".cache",
    "WeightCache": ".cache",
    "Entry": ".entry",
    "ChecksumMismatchError": ".errors",
    "CommitError": ".errors",
    "EmptySourceError": ".errors",
    "EntryInUseError": ".errors",
    "EntryNotFoundError": ".errors",
    "IntegrityError": ".errors",
    "InvalidSourceError": ".errors",
    "LinkError": ".errors",
    "LoadError": ".errors",
    "LockTimeoutError": ".errors",
    "ManifestError": ".errors",
    "SafetensorsFormatError": ".errors",
    "SizeMismatchError": ".errors",
    "SourceAuthError": ".errors",
    "SourceChangedError": ".errors",
    "SourceError": ".errors",
    "SourceNotFoundError": ".errors",
    "SourceUnreachableError": ".errors",
    "StoreError": ".errors",
    "StoreFullError": ".errors",
    "StoreNotWritableError": ".errors",
    "UnknownSchemeError": ".errors",
    "UnsafePathError": ".errors",
    "WeightCacheError": ".errors",
    "WeightFileNotFoundError": ".errors",
    "GcReport": "._core.gc",
    "FileRecord": ".manifest",
    "Manifest": ".manifest",
    "ProgressEvent": ".progress",
    "Source": ".providers.base",
    "Store": ".providers.base",
    "HFSource": ".providers.sources.hf",
    "ImageDirSource": ".providers.sources.image_dir",
    "LocalStore": ".providers.stores.local_store",
    "LeaseSettings": ".providers.stores.modal_volume",
    "ModalVolumeStore": ".providers.stores.modal_volume",
    "URLSource": ".providers.sources.url",
    "parse_source": "._core.registry",
    "register_source": "._core.registry",
    "VerifyReport": "._core.verify",
    # The Source protocol's plan and the registry's errors, for sources written outside this package.
    "Plan": ".providers.base",
    "SchemeTakenError": ".errors",
    "SourcePluginError": ".errors",
    # An existing Hugging Face cache made entries (`weightcache adopt-hf-cache`).
    "AdoptReport": "._hf_cache.adopt",
    "adopt_hf_cache": "._hf_cache.adopt",
}


def __getattr__(name: str) -> object:
    """Import a public name's module on first use and cache the name here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'weightcache' has no attribute {name!r}")
    # __import__ rather than importlib.import_module: only the former shows in `python -X importtime`.
    value = getattr(__import__(__name__ + module, fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AdoptReport",
    "ChecksumMismatchError",
    "CommitError",
    "EmptySourceError",
    "Entry",
    "EntryInUseError",
    "EntryNotFoundError",
    "FileRecord",
    "GcReport",
    "HFSource",
    "ImageDirSource",
    "IntegrityError",
    "InvalidSourceError",
    "LeaseSettings",
    "LinkError",
    "LoadError",
    "LocalStore",
    "LockTimeoutError",
    "Manifest",
    "ManifestError",
    "ModalVolumeStore",
    "Plan",
    "ProgressEvent",
    "SafetensorsFormatError",
    "SchemeTakenError",
    "SizeMismatchError",
    "Source",
    "SourceAuthError",
    "SourceChangedError",
    "SourceError",
    "SourceNotFoundError",
    "SourcePluginError",
    "SourceStatus",
    "SourceUnreachableError",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreNotWritableError",
    "URLSource",
    "UnknownSchemeError",
    "UnsafePathError",
    "VerifyReport",
    "WeightCache",
    "WeightCacheError",
    "WeightFileNotFoundError",
    "__version__",
    "adopt_hf_cache",
    "parse_source",
    "register_source",
]
