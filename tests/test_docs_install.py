"""Every install line in the README and docs works from a checkout: weightcache is not on PyPI yet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("examples/*/README.md"))]

# `pip install 'weightcache[torch]'`, `pip install weightcache`, `uv_pip_install("weightcache", ...)`:
# each asks a package index for a package that is not there.
FROM_AN_INDEX = re.compile(
    r"pip install\b[^`\n&;|#]*?(?<![\w./-])['\"]?weightcache\b(?![\w./-])"
    r"|pip_install\([^)]*['\"]weightcache(\[[^'\"]*\])?['\"]"
)
CHECKOUT_EXTRAS = re.compile(r"pip install[^`\n&;|#]*?['\"]?\.\[([\w,]+)\]")


@pytest.mark.parametrize("doc", DOCS, ids=[str(doc.relative_to(ROOT)) for doc in DOCS])
def test_no_install_line_asks_an_index_for_weightcache(doc: Path) -> None:
    text = doc.read_text()
    assert not FROM_AN_INDEX.findall(text), [m.group(0) for m in FROM_AN_INDEX.finditer(text)]


def test_every_extra_installed_from_the_checkout_exists() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    extras_table = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    declared = set(re.findall(r"^([\w-]+) = \[", extras_table, flags=re.MULTILINE))
    named = {
        extra
        for doc in DOCS
        for group in CHECKOUT_EXTRAS.findall(doc.read_text())
        for extra in group.split(",")
    }
    assert named and named <= declared, named - declared


def test_the_pattern_catches_what_it_must() -> None:
    wrong = (
        "pip install 'weightcache[torch]'",
        "pip install weightcache",
        '.uv_pip_install("weightcache", "x")',
    )
    for line in wrong:
        assert FROM_AN_INDEX.search(line), line
    right = ("pip install '.[torch]'", "pip install . && python -m weightcache demo", "pip install -e .")
    for line in right:
        assert not FROM_AN_INDEX.search(line), line
