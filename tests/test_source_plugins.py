"""A source from another package, installed with a ``weightcache.sources`` entry point, works as a built-in.

The package is tests/third_party/acme_weights.py, made installed-looking by a ``.dist-info``
directory on ``sys.path``: ``importlib.metadata`` finds its entry point as it would a wheel's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from weightcache import SourcePluginError, UnknownSchemeError, WeightCache
from weightcache._core import registry

THIRD_PARTY = Path(__file__).parent / "third_party"


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Install a distribution whose ``weightcache.sources`` entry points are the given lines."""

    def install(entry_points: str) -> None:
        dist_info = tmp_path / "site" / "acme_weights-1.0.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-weights\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text(f"[weightcache.sources]\n{entry_points}\n")
        monkeypatch.syspath_prepend(str(THIRD_PARTY))
        monkeypatch.syspath_prepend(str(dist_info.parent))
        monkeypatch.setattr(registry, "_PLUGINS", None)  # entry points are read again, with this one
        monkeypatch.delitem(sys.modules, "acme_weights", raising=False)

    return install


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The directory an ``acme://`` URI serves."""
    root = tmp_path / "acme-model"
    root.mkdir()
    (root / "config.json").write_bytes(b'{"hidden_size": 32}')
    (root / "model.bin").write_bytes(b"w" * 5000)
    return root


def test_an_installed_source_works_with_ensure(
    cache: WeightCache, install: Callable[[str], None], repo: Path, make_image_dir: Callable[..., Path]
) -> None:
    install("acme = acme_weights:AcmeSource")
    cache.ensure(make_image_dir())
    assert registry._PLUGINS is None and "acme_weights" not in sys.modules  # read only for an unknown scheme
    entry = cache.ensure(f"acme://{repo}")
    assert not entry.hit and (entry.path / "model.bin").read_bytes() == b"w" * 5000
    assert entry.manifest.source_info == {"served_from": str(repo), "files_sent": "2"}
    assert cache.ensure(f"acme://{repo}").hit
    assert cache.verify(entry, deep=True).ok


def test_an_installed_source_works_with_the_cli_and_outdated(
    install: Callable[[str], None], repo: Path, cli, store_dir: Path
) -> None:
    install("acme = acme_weights:AcmeSource")
    ensured = cli("ensure", f"acme://{repo}", "--store", store_dir, "--json")
    assert ensured.exit_code == 0, ensured.stdout
    first = json.loads(ensured.stdout)
    (repo / "config.json").write_bytes(b'{"hidden_size": 64}')  # upstream moves on
    listed = cli("outdated", "--store", store_dir, "--json")
    assert listed.exit_code == 0, listed.stdout
    [check] = json.loads(listed.stdout)
    assert check["source"] == f"acme://{repo}" and check["outdated"]
    assert check["cached_version"] == first["version"] != check["latest_version"]
    refreshed = json.loads(
        cli("ensure", f"acme://{repo}", "--store", store_dir, "--refresh", "--json").stdout
    )
    assert refreshed["version"] == check["latest_version"]


def test_an_unknown_scheme_names_the_installed_ones(
    cache: WeightCache, install: Callable[[str], None]
) -> None:
    install("acme = acme_weights:AcmeSource")
    with pytest.raises(UnknownSchemeError, match="acme://"):
        cache.ensure("nosuch://model")


def test_an_entry_point_cannot_take_a_built_in_scheme(
    cache: WeightCache, install: Callable[[str], None], make_image_dir: Callable[..., Path]
) -> None:
    install("dir = acme_weights:AcmeSource")
    with pytest.raises(UnknownSchemeError):
        cache.ensure("acme:///x")
    assert cache.ensure(f"dir://{make_image_dir()}").manifest.source.startswith("dir://")


def test_a_source_that_fails_to_import_is_named(cache: WeightCache, install: Callable[[str], None]) -> None:
    install("broken = acme_weights_missing:Nothing")
    with pytest.raises(SourcePluginError) as caught:
        cache.ensure("broken://model")
    message = str(caught.value)
    assert "broken://" in message and "acme_weights_missing" in message and "\n" not in message
