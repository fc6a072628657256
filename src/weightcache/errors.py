"""The exceptions weightcache raises.

Every error a user can cause or meet derives from :class:`WeightCacheError`, so one
``except WeightCacheError`` catches them all. Each message is one sentence that says
what went wrong and what to do about it; none of them ever contains a secret.
"""

from __future__ import annotations


class WeightCacheError(Exception):
    """Base class of every error weightcache raises on purpose."""


# --- sources -------------------------------------------------------------------------------


class SourceError(WeightCacheError):
    """A source could not be parsed, resolved or fetched."""


class UnknownSchemeError(SourceError, ValueError):
    """A source URI uses a scheme no registered source handles."""


class InvalidSourceError(SourceError, ValueError):
    """A source URI or argument is malformed (a bad repo id, an unknown URI parameter, a bad hash)."""


class SourceNotFoundError(SourceError):
    """The source does not exist (a missing directory, repository, revision or URL)."""


class EmptySourceError(SourceError):
    """The source exists but holds no files to cache."""


class UnsafePathError(SourceError):
    """A source names a file outside where it may (``..``, an absolute path, an escaping symlink)."""


class SourceChangedError(SourceError):
    """The source changed while it was being fetched, so what was fetched matches no single version."""


class SourceUnreachableError(SourceError):
    """The source could not be reached (network down, server failing) and nothing usable is cached."""


class SourceAuthError(SourceError):
    """The source refused access: the repository is gated or private, or the token is wrong."""


# --- integrity -----------------------------------------------------------------------------


class IntegrityError(WeightCacheError):
    """Bytes did not match the size or hash they were promised to have."""


class ChecksumMismatchError(IntegrityError):
    """A file's hash differs from the one its source or manifest records."""


class SizeMismatchError(IntegrityError):
    """A file's size differs from the one its source or manifest records."""


# --- stores and entries --------------------------------------------------------------------


class StoreError(WeightCacheError):
    """The store cannot be used as asked."""


class StoreNotWritableError(StoreError):
    """The store is read-only, unwritable, or not a directory, and the operation needs to write."""


class StoreFullError(StoreError):
    """The store's filesystem ran out of space."""


class EntryNotFoundError(StoreError):
    """No entry with that key (or for that source) is in the store."""


class EntryInUseError(StoreError):
    """An entry cannot be removed because another process is using it."""


class ManifestError(StoreError):
    """A manifest on disk is truncated, not JSON, or describes files it may not."""


class LockTimeoutError(StoreError):
    """Waiting for another process to finish populating an entry took longer than allowed."""


class CommitError(StoreError):
    """A replicated store (a Modal Volume) failed to persist a published entry."""


# --- linking -------------------------------------------------------------------------------


class LinkError(WeightCacheError):
    """An entry could not be linked to the destination asked for."""


# --- reading and loading weights -----------------------------------------------------------


class LoadError(WeightCacheError):
    """Weights could not be prefetched or loaded onto a device."""


class WeightFileNotFoundError(LoadError, FileNotFoundError):
    """A file or directory to prefetch or load does not exist, or holds no weights to load."""


class SafetensorsFormatError(LoadError, ValueError):
    """A safetensors file is malformed (truncated, bad header, misfit offsets) or holds an unknown dtype."""


# --- the command line ----------------------------------------------------------------------


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The store directory given to a command that only reads or removes does not exist."""


class StoreNotEmptyError(StoreError, ValueError):
    """The demo was given a store that already holds entries; it damages and collects entries on purpose."""


# --- added later: arguments, leases, entries' files, archives, stores -----------------------


class InvalidArgumentError(WeightCacheError, ValueError):
    """An argument is out of range or contradictory (``gc(keep=0)``, an unknown link mode, a bad path)."""


class LeaseLostError(StoreError):
    """A populate lost its lease (another process took it over), so it stopped without publishing."""


class EntryFileNotFoundError(EntryNotFoundError, KeyError):
    """An entry has no file of that name (a ``KeyError`` too, as for a missing mapping key)."""

    def __str__(self) -> str:
        # KeyError quotes its argument; this is a sentence.
        return str(self.args[0]) if self.args else ""


class ArchiveError(WeightCacheError):
    """An entry archive could not be read or written (not a tar archive, truncated, an unusable path)."""


class ArchiveFormatError(ArchiveError, SourceError):
    """What was given as an archive is not a complete tar archive (a truncated download, another file)."""


class UnsafeStoreError(StoreError):
    """A store's own directories lead out of it (a symlinked ``entries/``, staging, trash): gc refuses."""


class VolumeNotMountedError(StoreError, ValueError):
    """A Modal store's path is not on a mounted Volume in this container (a typo in the mount path)."""


class SchemeTakenError(SourceError, ValueError):
    """``register_source`` was asked for a scheme a source already handles, without ``clobber=True``."""


class SourcePluginError(SourceError):
    """A source another package registers (a ``weightcache.sources`` entry point) could not be loaded."""
