"""weightcache: model weights on a persistent volume, fetched once, verified, crash-safe.

::

    from weightcache import WeightCache, LocalStore
    cache = WeightCache(LocalStore("/cache"))
    entry = cache.ensure("dir:///tmp/initial_weights", link_to="/root/data/weights")
    entry.path, entry.hit, entry.manifest
"""

from __future__ import annotations

from ._version import __version__
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
    SizeMismatchError,
    SourceAuthError,
    SourceChangedError,
    SourceError,
    SourceNotFoundError,
    SourceUnreachableError,
    StoreError,
    StoreFullError,
    StoreNotWritableError,
    UnknownSchemeError,
    UnsafePathError,
    WeightCacheError,
    WeightFileNotFoundError,
)
from .gc import GcReport
from .manifest import FileRecord, Manifest
from .progress import ProgressEvent
from .providers.base import Source, Store
from .providers.hf import HFSource
from .providers.image_dir import ImageDirSource
from .providers.local_store import LocalStore
from .providers.modal_volume import LeaseSettings, ModalVolumeStore
from .providers.url import URLSource
from .registry import parse_source, register_source
from .verify import VerifyReport

__all__ = [
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
    "ProgressEvent",
    "SafetensorsFormatError",
    "SizeMismatchError",
    "Source",
    "SourceAuthError",
    "SourceChangedError",
    "SourceError",
    "SourceNotFoundError",
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
    "parse_source",
    "register_source",
]

# The Source protocol's plan and the registry's errors, for sources written outside this package.
from .errors import SchemeTakenError, SourcePluginError
from .providers.base import Plan

__all__ += ["Plan", "SchemeTakenError", "SourcePluginError"]
