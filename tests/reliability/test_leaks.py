"""Log lines never carry a credential, on the hf:// path as on https://, at INFO or with --debug.

The secrets planted: ``user:pass@`` in ``HF_ENDPOINT``; a pre-signed CDN link (``X-Amz-Signature``,
``X-Amz-Credential``) that the Hub redirects to, so it appears in a ``Location`` header, in the
HTTP client's request log and in huggingface_hub's own messages.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from weightcache import HFSource, SourceError, WeightCache
from weightcache.testing import FakeHub, FileServer

SECRETS = ("HUBPASS", "SIGSECRET", "CREDSECRET")
SIGNED = "X-Amz-Credential=CREDSECRET%2F20260101&X-Amz-Signature=SIGSECRET"
WEIGHTS = os.urandom(200_000)


@pytest.fixture
def signed_hub() -> Iterator[tuple[FakeHub, str]]:
    """A fake Hub behind ``user:HUBPASS@`` whose CDN answers the weights through a signed redirect."""
    with FakeHub() as hub:
        hub.add_repo("acme/tiny", {"model.safetensors": WEIGHTS, "config.json": b"{}"})
        cdn_path = hub.cdn_path("acme/tiny", "model.safetensors")
        hub.cdn.add(f"{cdn_path}?{SIGNED}", WEIGHTS)
        hub.cdn.redirect(cdn_path, f"{cdn_path}?{SIGNED}")
        yield hub, hub.url.replace("http://", "http://alice:HUBPASS@")


def assert_clean(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, leaked


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_hub_path_logs_are_redacted(
    signed_hub: tuple[FakeHub, str], cache: WeightCache, caplog: pytest.LogCaptureFixture, level: int
) -> None:
    hub, endpoint = signed_hub
    caplog.set_level(level)
    entry = cache.ensure(HFSource("acme/tiny", endpoint=endpoint))
    assert entry.file("model.safetensors").read_bytes() == WEIGHTS
    assert any(f"?{SIGNED}" in f"{request.path}?{request.query}" for request in hub.cdn.requests)
    assert "HTTP Request" in caplog.text and "X-Amz-Signature=<redacted>" in caplog.text  # logged, redacted
    assert_clean(caplog.text)


def test_redirect_location_headers_are_redacted(cache: WeightCache, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FileServer() as server:
        server.add(f"/signed.bin?{SIGNED}", WEIGHTS)
        server.redirect("/model.bin", f"/signed.bin?{SIGNED}")
        assert cache.ensure(server.url_for("/model.bin")).file().read_bytes() == WEIGHTS
    assert "Location" in caplog.text  # httpcore2 dumps the response headers at DEBUG
    assert_clean(caplog.text)


def test_hub_errors_and_their_causes_are_redacted(
    signed_hub: tuple[FakeHub, str], cache: WeightCache
) -> None:
    _hub, endpoint = signed_hub
    with pytest.raises(SourceError) as caught:
        cache.ensure(HFSource("acme/missing", endpoint=endpoint))
    shown = "".join(traceback.format_exception(caught.value))  # what --debug prints, causes included
    assert "Repository Not Found for url: http://127.0.0.1" in shown
    assert_clean(shown)


@pytest.mark.parametrize(("uri", "exit_code"), [("hf://acme/tiny", 0), ("hf://acme/missing", 1)])
def test_cli_debug_on_the_hub_path_is_redacted(
    signed_hub: tuple[FakeHub, str], tmp_path: Path, uri: str, exit_code: int
) -> None:
    _hub, endpoint = signed_hub
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_TELEMETRY": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "weightcache", "ensure", uri, "--store", str(tmp_path / "s"), "--debug"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == exit_code, done.stderr[-2000:]
    assert "HTTP Request" in done.stderr  # --debug logged the requests
    assert_clean(done.stdout + done.stderr)
