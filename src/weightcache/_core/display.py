"""How names, counts and sizes are shown to people: safely, with right plurals, in one unit family.

File names come from the Hub, from archives and from directories nobody here controls. A name
holding an escape sequence must not reach a terminal as one (it can retitle the window, clear the
screen or hide text), so every name the CLI prints or the library logs goes through
:func:`safe_display`. Sizes are binary everywhere (KiB, MiB, GiB), progress bars included.
"""

from __future__ import annotations

import unicodedata

# Control characters, format characters (bidi overrides, zero-width joiners), line and paragraph
# separators, and lone surrogates (undecodable bytes from os.fsdecode), which a terminal would act on
# or a stream refuse to encode.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def safe_display(text: str) -> str:
    """``text`` with every character a terminal would act on written as a Python escape (``\\x1b``).

    Printable text, including non-ASCII letters, is kept as it is; a backslash stays a backslash.
    """
    if text.isprintable():  # the common case costs one C-level scan
        return text
    return "".join(
        _escape(char) if unicodedata.category(char) in _UNSAFE_CATEGORIES else char for char in text
    )


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def human_bytes(count: float) -> str:
    """A size in binary units: ``1536`` -> ``1.5 KiB``, ``300_000_000`` -> ``286.1 MiB``."""
    size = float(count)
    for unit in _BINARY_UNITS:
        if abs(size) < 1024 or unit == _BINARY_UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 file``, ``2 files``; ``plural_noun`` for irregular nouns (``1 entry``, ``2 entries``)."""
    if count == 1:
        return f"{count:,} {noun}"
    return f"{count:,} {plural_noun or noun + 's'}"
