"""The code style the project promises (../docs and the style guide), enforced where a machine can."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "weightcache"
MAX_MODULE_LINES = 400


def _modules() -> list[Path]:
    return sorted(
        [*PACKAGE.rglob("*.py"), *(ROOT / "examples").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    )


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it is in the test extra)")
    root = PACKAGE.parents[1]
    result = subprocess.run(
        [ruff, "check", "src", "tests", "examples", "bench"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", _modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_modules_are_small_and_public_names_documented(module: Path) -> None:
    source = module.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{module.name} is over {MAX_MODULE_LINES} lines"
    tree = ast.parse(source)
    assert ast.get_docstring(tree), f"{module.name} has no module docstring"
    undocumented = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not node.name.startswith("_")
        and not ast.get_docstring(node)
        and not _is_nested(node, tree)
    ]
    assert not undocumented, f"{module.name}: public names without a docstring: {undocumented}"


def _is_nested(node: ast.AST, tree: ast.Module) -> bool:
    # Functions inside functions, and members of private classes, are implementation details.
    hidden = [
        parent
        for parent in ast.walk(tree)
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef)
        or (isinstance(parent, ast.ClassDef) and parent.name.startswith("_"))
    ]
    return any(parent is not node and node in ast.walk(parent) for parent in hidden)
