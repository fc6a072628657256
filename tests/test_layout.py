"""The package's layout shows what is public: the top level holds the facade, the core types and the
public doors; everything else lives in a private (``_``-prefixed) package or under providers/, cli/
and testing/. The examples, written as a user would, import only public modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "weightcache"

PUBLIC_TOP_LEVEL = {
    "__init__.py",
    "__main__.py",
    "_version.py",
    "cache.py",
    "entry.py",
    "errors.py",
    "manifest.py",
    "prefetch.py",
    "progress.py",
    "torch.py",
}
PUBLIC_PACKAGES = {"cli", "providers", "testing"}
PUBLIC_FOR_EXAMPLES = {"weightcache", "weightcache.torch", "weightcache.prefetch", "weightcache.testing"}


def test_the_top_level_holds_only_the_facade_the_core_types_and_the_public_doors() -> None:
    modules = {path.name for path in PACKAGE.glob("*.py")}
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    assert modules == PUBLIC_TOP_LEVEL
    assert {name for name in packages if not name.startswith("_")} == PUBLIC_PACKAGES


def test_providers_tell_sources_and_stores_apart() -> None:
    providers = PACKAGE / "providers"
    assert {path.name for path in providers.glob("*.py")} == {"__init__.py", "base.py"}
    assert (providers / "sources" / "hf.py").exists() and (providers / "stores" / "local_store.py").exists()


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_examples_import_only_public_modules() -> None:
    private = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "examples").rglob("*.py"))
        for module in _imported_modules(path)
        if module.split(".")[0] == "weightcache" and module not in PUBLIC_FOR_EXAMPLES
    }
    assert not private, sorted(private)
