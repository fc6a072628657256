"""Refs: which version a source URI resolved to last, so a warm call needs no network."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, ValidationError

from .._transport.fsutil import atomic_write_bytes
from .layout import StoreLayout


class Ref(BaseModel):
    """A source URI, the version it resolved to, and the entry holding that version."""

    model_config = ConfigDict(frozen=True)

    uri: str
    version: str
    key: str
    updated_at: datetime


def read_ref(layout: StoreLayout, uri: str) -> Ref | None:
    """The ref recorded for ``uri``, or ``None`` if there is none (or it is unreadable)."""
    with contextlib.suppress(OSError, ValidationError, ValueError):
        ref = Ref.model_validate_json(layout.ref_path(uri).read_bytes())
        if ref.uri == uri:
            return ref
    return None


def write_ref(layout: StoreLayout, uri: str, version: str, key: str) -> None:
    """Record that ``uri`` now resolves to ``version``, held by entry ``key``."""
    ref = Ref(uri=uri, version=version, key=key, updated_at=datetime.now(timezone.utc))
    layout.refs_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(layout.ref_path(uri), ref.model_dump_json(indent=2).encode() + b"\n")


def all_refs(layout: StoreLayout) -> list[Ref]:
    """Every readable ref in the store."""
    refs = []
    if layout.refs_dir.is_dir():
        for path in sorted(layout.refs_dir.glob("*.json")):
            with contextlib.suppress(OSError, ValidationError, ValueError):
                refs.append(Ref.model_validate_json(path.read_bytes()))
    return refs


def drop_refs_to(layout: StoreLayout, key: str) -> None:
    """Forget every ref that points at entry ``key`` (after it was removed)."""
    for ref in all_refs(layout):
        if ref.key == key:
            with contextlib.suppress(FileNotFoundError):
                layout.ref_path(ref.uri).unlink()
