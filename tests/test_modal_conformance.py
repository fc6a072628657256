"""The conformance suite (what weightcache assumes of Modal's Volume and Dict) holds on the fakes."""

from __future__ import annotations

from pathlib import Path

from weightcache.testing.conformance import ASSUMPTIONS, STEPS, FakeBackend, Side, run_suite


def test_every_assumption_holds_on_the_fakes(tmp_path: Path) -> None:
    result = run_suite(FakeBackend(tmp_path))
    assert [outcome.assumption for outcome in result.outcomes] == list(ASSUMPTIONS)
    failed = [(outcome.assumption, outcome.detail) for outcome in result.outcomes if not outcome.passed]
    assert failed == []
    assert result.passed
    assert {"commit", "reload", "Dict get", "Dict put (8 at once)"} <= set(result.latencies)


def test_a_fake_that_breaks_an_assumption_is_caught(tmp_path: Path) -> None:
    backend = FakeBackend(tmp_path)
    original = backend.call

    def call_with_skip_reload(side, step, **kwargs):  # a server that always answers skip_reload
        with backend.volume.container(side, skip_reload=True) as container:
            return STEPS[step](Side(container, container.mount_path, backend.leases), **kwargs)

    backend.call = call_with_skip_reload  # type: ignore[method-assign]
    result = run_suite(backend)
    backend.call = original  # type: ignore[method-assign]
    outcomes = {outcome.assumption: outcome.passed for outcome in result.outcomes}
    assert outcomes["commit reloads"] is False
    assert outcomes["visibility after commit"] is True
