"""Every third-party package the library and the example apps import is declared in pyproject.toml.

An undeclared import works on the machine that happens to have the package and fails with
ModuleNotFoundError on a fresh install (httpx2 was once imported but not declared). Offline and
cheap: the imports are read from the source, the declarations from pyproject.toml.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"weightcache", "examples", "tests", "bench"}


def _imported_modules(folder: Path) -> dict[str, str]:
    """Top-level names of the absolute imports under ``folder``, each with one file importing it."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return {
        name: where
        for name, where in found.items()
        if name not in sys.stdlib_module_names and name not in FIRST_PARTY and name != "__future__"
    }


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    """Every distribution pyproject.toml requires, core and every extra (read from the checkout, so a
    stale installed copy of the metadata cannot hide a change)."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    requirements = [*project["dependencies"], *(requirement for extra in extras for requirement in extra)]
    names = (re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0] for requirement in requirements)
    return {_normalized(name) for name in names}


@pytest.mark.parametrize("folder", ["src", "examples"])
def test_every_third_party_import_is_declared(folder: str) -> None:
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    # A package not installed here (an extra left out) cannot be mapped to its distribution's name:
    # the job that installs every extra checks it.
    undeclared = {
        module: where
        for module, where in _imported_modules(ROOT / folder).items()
        if module in distributions
        and not any(_normalized(dist) in declared for dist in distributions[module])
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
