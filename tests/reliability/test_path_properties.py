"""Path safety as properties: whatever a source or a manifest names, nothing lands outside the entry."""

from __future__ import annotations

import contextlib
import os
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from weightcache import FileRecord, UnsafePathError, WeightCacheError
from weightcache._core.staging import Staging
from weightcache._transport.fsutil import safe_relpath
from weightcache.manifest import RELPATH_PATTERN

ENTRY = "/store/entries/key/files"
# Names built from the characters that matter (separators, dots, NUL, backslash), plus any text.
PARTS = st.sampled_from(["..", ".", "", "a", "b.bin", "...", "..a", " ", "\\", "\x00", "ü", "\udcff"])
NAMES = st.one_of(st.lists(PARTS, max_size=6).map("/".join), st.text(max_size=40))


@settings(max_examples=600, deadline=None)
@given(NAMES)
@example("/etc/passwd")
@example("a/../../b")
@example("a/./b/")
def test_a_name_is_refused_or_stays_inside_the_entry(name: str) -> None:
    try:
        relpath = safe_relpath(name)
    except UnsafePathError as error:
        assert "\n" not in str(error)
        return
    joined = os.path.normpath(os.path.join(ENTRY, relpath))
    assert joined.startswith(ENTRY + "/")  # inside, and never the entry directory itself
    assert relpath == safe_relpath(relpath)  # normalised: a second pass changes nothing
    assert re.match(RELPATH_PATTERN, relpath)  # and a manifest may record it
    relpath.encode()  # and JSON can hold it


@settings(max_examples=600, deadline=None)
@given(NAMES)
def test_a_manifest_accepts_exactly_the_normalised_safe_names(name: str) -> None:
    try:
        expected = safe_relpath(name) == name
    except UnsafePathError:
        expected = False
    try:
        FileRecord(path=name, size=0, blake3="0" * 64)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(NAMES, min_size=1, max_size=4))
def test_staging_writes_only_inside_its_files_directory(tmp_path_factory, names: list[str]) -> None:
    root = tmp_path_factory.mktemp("staging")
    staging = Staging(root / "a" / "b" / "c" / "st", store_name="test")  # room for ../ to land in
    staging.files_dir.mkdir(parents=True)
    for name in names:
        # Refused, a duplicate name, or a name colliding with a directory an earlier name made.
        with contextlib.suppress(WeightCacheError, OSError):
            staging.write_stream(name, [b"x"], size=1)
    ancestors = set(staging.files_dir.parents)
    for path in root.rglob("*"):
        assert path in ancestors or path == staging.files_dir or staging.files_dir in path.parents, path
