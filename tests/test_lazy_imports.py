"""A container start imports only what it uses: `import weightcache` is cheap and a warm hit pulls no
HTTP, Modal, Hub, locking or CLI code (each costs tens of milliseconds per process start)."""

from __future__ import annotations

import json
from pathlib import Path

import weightcache
from weightcache import LocalStore, WeightCache

from .helpers import run_python

NOT_ON_A_HIT = ["filelock", "rich", "typer", "httpx", "huggingface_hub", "modal", "torch"]

PROBE = """
import json, sys
import weightcache
after_import = [m for m in sys.modules if m.split(".")[0] in {heavy!r} or m.startswith("weightcache.")]
if len(sys.argv) > 1:
    entry = weightcache.WeightCache(weightcache.LocalStore(sys.argv[1])).ensure(sys.argv[2])
    assert entry.hit
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
print(json.dumps({{"import": after_import, "hit": loaded}}))
"""


def probe(*args: str) -> dict[str, list[str]]:
    heavy = [*NOT_ON_A_HIT, "pydantic", "blake3"]
    result = run_python(PROBE.format(heavy=heavy), *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_weightcache_imports_no_submodule_until_a_name_is_used() -> None:
    assert probe()["import"] == ["weightcache._version"]


def test_a_warm_hit_imports_no_network_lock_or_cli_code(tmp_path: Path) -> None:
    source = tmp_path / "weights"
    source.mkdir()
    (source / "model.bin").write_bytes(b"w" * 1000)
    WeightCache(LocalStore(tmp_path / "store")).ensure(f"dir://{source}")
    found = probe(str(tmp_path / "store"), f"dir://{source}")
    assert not set(found["hit"]) & set(NOT_ON_A_HIT), found["hit"]


def test_every_public_name_is_still_there() -> None:
    assert sorted(dir(weightcache)) == sorted(weightcache.__all__)
    assert all(getattr(weightcache, name) is not None for name in weightcache.__all__)
    assert weightcache.WeightCache is WeightCache
