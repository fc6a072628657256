"""docs/modal.md's Python blocks run: Modal apps are defined against the real SDK (offline), tests pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).parent.parent / "docs" / "modal.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", GUIDE.read_text(), flags=re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block-{n}" for n in range(len(BLOCKS))])
def test_guide_code_runs(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "no-modal.toml"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "weights").mkdir(parents=True)  # what the fashion app adds to its image
    namespace: dict[str, object] = {"__name__": "guide"}
    # Definitions only: a removed Modal 1.x parameter (keep_warm, ...) raises here; nothing is deployed.
    exec(compile(code, str(GUIDE), "exec"), namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            value(tmp_path / name)
