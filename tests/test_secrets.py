"""Credentials are used for requests and shown nowhere: URIs, reprs, manifests, refs, JSON, errors, logs."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from weightcache import SourceError, WeightCache
from weightcache.providers.sources.hf import HFSource
from weightcache.providers.sources.url import URLSource
from weightcache.testing import FakeHub, FileServer

URL_SECRETS = ("pa55word", "TOKSECRET", "SIGSECRET", "HDRSECRET")
HF_SECRET = "hf_SECRETTOKEN"


def store_text(store_dir: Path) -> str:
    """Everything weightcache wrote in the store besides the cached files themselves."""
    return "".join(
        path.read_text(errors="replace")
        for path in store_dir.rglob("*.json")
        if "files" not in path.relative_to(store_dir).parts
    )


def assert_clean(text: str, secrets: tuple[str, ...]) -> None:
    for secret in secrets:
        assert secret not in text


def test_url_credentials_stay_out_of_everything(
    cache: WeightCache, store_dir: Path, cli, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FileServer() as server:
        server.add("/private/model.bin", b"weights")
        basic = base64.b64encode(b"alice:pa55word").decode()
        server.protect("/private/model.bin", authorization=f"Basic {basic}", query={"token": "TOKSECRET"})
        url = f"http://alice:pa55word@{server.url[7:]}/private/model.bin?token=TOKSECRET&X-Amz-Signature=SIGSECRET&v=2"
        source = URLSource(url, headers={"X-Api-Key": "HDRSECRET"})
        entry = cache.ensure(source)
        assert entry.file().read_bytes() == b"weights"
        assert "token=<redacted:" in source.uri and "v=2" in source.uri  # a digest tells tokens apart
        with pytest.raises(SourceError) as caught:
            cache.ensure(
                URLSource(url.replace("/private/", "/elsewhere/"), headers={"X-Api-Key": "HDRSECRET"})
            )
        cli_outputs = [
            cli("ensure", url, "--store", store_dir, "--json"),
            cli("ls", "--store", store_dir, "--json"),
            cli("status", url, "--store", store_dir, "--json"),
            cli("outdated", "--store", store_dir, "--json"),
            cli("ensure", url.replace("/private/", "/elsewhere/"), "--store", store_dir),
        ]
    [check] = json.loads(cli_outputs[3].stdout)
    assert "credentials removed" in check["error"]  # a redacted URL cannot be re-checked, and says so
    shown = [source.uri, source.identity, repr(source), str(caught.value), store_text(store_dir), caplog.text]
    shown += [result.output for result in cli_outputs]
    assert_clean("\n".join(shown), URL_SECRETS)
    assert "HTTP Request" in caplog.text  # httpx2 did log its requests, redacted


def test_hub_token_stays_out_of_everything(
    cache: WeightCache,
    store_dir: Path,
    cli,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", HF_SECRET)
        hub.add_repo("acme/private", {"model.safetensors": b"w" * 1000, "config.json": b"{}"}, private=True)
        hub.add_repo("acme/gated", {"model.safetensors": b"g" * 10}, gated=True)
        hub.grant("acme/private", HF_SECRET)
        source = HFSource("acme/private", token=HF_SECRET)
        cache.ensure(source)
        errors = []
        for uri in ("hf://acme/gated", "hf://acme/missing"):
            with pytest.raises(SourceError) as caught:
                cache.ensure(uri)
            errors.append(str(caught.value))
        cli_outputs = [
            cli("ensure", "hf://acme/private", "--store", store_dir, "--json"),
            cli("ls", "--store", store_dir, "--json"),
            cli("outdated", "--store", store_dir, "--json"),
            cli("ensure", "hf://acme/gated", "--store", store_dir),
        ]
        assert f"Bearer {HF_SECRET}" in {request.headers.get("authorization") for request in hub.requests}
    shown = [source.uri, source.identity, repr(source), *errors, store_text(store_dir), caplog.text]
    shown += [result.output for result in cli_outputs]
    assert_clean("\n".join(shown), (HF_SECRET,))
