"""`weightcache selftest`: the conformance suite from the CLI; its Modal app is valid under the real SDK."""

from __future__ import annotations

import json
from pathlib import Path

import modal
import pytest

from weightcache.testing.conformance import ASSUMPTIONS
from weightcache.testing.modal_selftest import APP_NAME, MOUNT, build_app, requirements, run_step


def test_selftest_on_the_fakes_passes_every_assumption(cli) -> None:
    result = cli("selftest", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] is True
    assert [item["name"] for item in document["assumptions"]] == list(ASSUMPTIONS)
    assert {"commit", "reload", "Dict get"} <= set(document["latency_seconds"])


def test_the_modal_app_definition_is_valid_under_the_real_sdk() -> None:
    # Lazy objects: building the app and reading .info() sends nothing (as for the example apps).
    volume = modal.Volume.from_name("weightcache-selftest", create_if_missing=True)
    leases = modal.Dict.from_name("weightcache-selftest", create_if_missing=True)
    app, sides = build_app(volume, leases)
    assert app.name == APP_NAME and sorted(sides) == ["a", "b"]
    for side in sides.values():
        info = side.info()
        assert {path: mount.name for path, mount in info.volumes.items()} == {MOUNT: "weightcache-selftest"}
        assert info.timeout == 600
    assert any(requirement.startswith("modal") for requirement in requirements())
    assert any(requirement.startswith("pydantic") for requirement in requirements())


def test_the_container_side_runs_a_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from weightcache.testing import FakeModalDict, FakeModalVolume, modal_selftest

    container = FakeModalVolume(tmp_path / "volume").container()
    monkeypatch.setattr(modal_selftest, "MOUNT", str(container.mount_path))
    done = run_step("write_commit", {"files": {"x.txt": "x"}}, container, FakeModalDict(tmp_path / "d"))
    assert done["commit_seconds"] >= 0
    assert (FakeModalVolume(tmp_path / "volume").container().mount_path / "x.txt").read_text() == "x"


@pytest.fixture
def no_modal_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "no-modal.toml"))


def test_selftest_modal_without_a_token_fails_in_one_line(cli, no_modal_credentials) -> None:
    result = cli("selftest", "--modal")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and "modal token new" in errors[0], result.stderr
