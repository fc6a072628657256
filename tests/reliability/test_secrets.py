"""Planted credentials appear nowhere: grep every byte a run leaves behind or shows.

Beyond tests/test_secrets.py (URIs, manifests, refs, JSON, errors, logs of a plain populate), this
greps after the runs that take odd paths: failed populates (401, 403, 404, unreachable, wrong
bytes), a populate SIGKILLed mid-download (its staging is left behind), gc, verify, status, every
CLI command's stdout and stderr, the whole store byte for byte (lock and use files, staging and
scratch included), DEBUG logs of every logger, and every exception in each error's chain.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.crash import run_child
from weightcache import Source, WeightCache, WeightCacheError
from weightcache.providers.sources.hf import HFSource
from weightcache.providers.sources.url import URLSource
from weightcache.testing import FakeHub, FileServer

USER, PASSWORD, QUERY_TOKEN, SIGNATURE, HEADER_TOKEN = (
    "alice",
    "pa55wordZ",
    "QTOKSECRET",
    "SIGSECRET",
    "HDRSECRET",
)
HF_TOKEN = "hf_PLANTEDSECRETTOKEN"
URL_SECRETS = [
    PASSWORD,
    QUERY_TOKEN,
    SIGNATURE,
    HEADER_TOKEN,
    base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),  # the Basic header built from user:pass@
]
WEIGHTS = bytes(range(256)) * 8000  # 2 MB, several chunks: a kill can land mid-file


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _shown(error: BaseException) -> str:
    """What logging an error with its traceback would print of the errors themselves."""
    return "\n".join(f"{type(item).__name__}: {item}\n{item!r}" for item in _chain(error))


def _store_bytes(store: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(store.rglob("*")) if path.is_file())


@dataclass(frozen=True)
class Planted:
    """A remote source holding planted credentials, ways to make it fail, and the secrets to grep."""

    good: Source
    failing: list[Source]
    secrets: list[str]
    uri: str  # the good source's URI as a user would type it, credentials and all
    kill_at: str  # a point where its download is under way (see crash.POINTS)
    kill_occurrence: int  # the arrival at ``kill_at`` that comes after weight bytes reach the disk


@pytest.fixture(params=["https", "hf"])
def planted(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Planted]:
    if request.param == "https":
        with FileServer() as server:
            basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            for path in ("/private/model.bin", "/private/other.bin", "/private/corrupt.bin"):
                server.add(path, WEIGHTS)
                server.protect(path, authorization=f"Basic {basic}", query={"token": QUERY_TOKEN})
            server.corrupt("/private/corrupt.bin", offset=5)
            host = server.url.removeprefix("http://")
            query = f"?token={QUERY_TOKEN}&X-Amz-Signature={SIGNATURE}&v=2"
            headers = {"X-Api-Key": HEADER_TOKEN}

            def url(path: str, password: str = PASSWORD) -> str:
                return f"http://{USER}:{password}@{host}{path}{query}"

            sha = hashlib.sha256(WEIGHTS).hexdigest()
            failing: list[Source] = [
                URLSource(url("/private/other.bin", "wrong"), headers=headers, retries=1),  # 403
                URLSource(url("/private/gone.bin"), headers=headers, retries=1),  # 404
                URLSource(url("/private/corrupt.bin") + f"#sha256={sha}", headers=headers),  # wrong bytes
                URLSource(f"http://{USER}:{PASSWORD}@127.0.0.1:9/x.bin{query}", headers=headers, retries=1),
            ]
            good = URLSource(url("/private/model.bin"), headers=headers)
            # The first chunk written: the file is on its way, 2 MB not yet all there.
            yield Planted(good, failing, URL_SECRETS, url("/private/model.bin"), "write-chunk", 1)
    else:
        with FakeHub() as hub:
            monkeypatch.setenv("HF_ENDPOINT", hub.url)
            monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
            hub.add_repo("acme/private", {"model.safetensors": WEIGHTS, "config.json": b"{}"}, private=True)
            hub.add_repo("acme/gated", {"model.safetensors": WEIGHTS}, gated=True)
            hub.add_repo("acme/corrupt", {"model.safetensors": WEIGHTS[::-1]})  # the CDN is content-addressed
            hub.corrupt("acme/corrupt", "model.safetensors", offset=5)
            hub.add_repo("acme/other", {"model.safetensors": WEIGHTS}, private=True)
            hub.grant("acme/private", HF_TOKEN)
            failing = [
                HFSource("acme/gated"),  # 403: token without access
                HFSource("acme/missing"),  # 404
                HFSource("acme/other", token="hf_PLANTEDWRONGTOKEN"),  # 401
                HFSource("acme/corrupt"),  # wrong bytes
            ]
            secrets = [HF_TOKEN, "hf_PLANTEDWRONGTOKEN"]
            # The repository's two files download in parallel and each is hashed back only once it is
            # whole, so the second hash-back comes after both downloads: the weights are on disk.
            yield Planted(HFSource("acme/private"), failing, secrets, "hf://acme/private", "adopt-hash", 2)


def test_planted_credentials_appear_nowhere(
    planted: Planted, store_dir: Path, cli, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cache = WeightCache(store_dir)
    shown: list[str] = []
    # A populate killed mid-download leaves its staging (and a downloader's scratch files) behind.
    killed = run_child(
        lambda: cache.ensure(planted.good),
        point=planted.kill_at,
        occurrence=planted.kill_occurrence,
        rng=random.Random(0),
    )
    left_behind = _store_bytes(store_dir)
    assert killed.how == "point" and WEIGHTS[:4096] in left_behind, killed
    entry = cache.ensure(planted.good)
    shown += [repr(planted.good), repr(entry), repr(cache), entry.manifest.to_json().decode()]
    for source in planted.failing:
        with pytest.raises(WeightCacheError) as caught:
            cache.ensure(source)
        shown += [_shown(caught.value), repr(source)]
    shown += [cache.status(planted.good).model_dump_json(), cache.verify(entry, deep=True).model_dump_json()]
    shown.append(cache.gc(keep=1).model_dump_json())
    for args in (
        ("ensure", planted.uri, "--json"),
        ("ensure", planted.uri),
        ("status", planted.uri, "--json"),
        ("ls", "--json"),
        ("ls",),
        ("verify", "--deep", "--json"),
        ("outdated", "--json"),
        ("ensure", planted.uri.replace("private", "missing")),
        ("gc", "--json"),
    ):
        result = cli(*args, "--store", store_dir)
        shown += [result.stdout, result.stderr]
    assert "HTTP Request" in caplog.text  # the HTTP client's request log was captured, and is checked
    text = "\n".join(shown) + caplog.text
    everything = text.encode() + left_behind + _store_bytes(store_dir)
    assert entry.path.joinpath(entry.manifest.files[-1].path).read_bytes() == WEIGHTS
    leaked = [secret for secret in planted.secrets if secret.encode() in everything]
    assert not leaked, leaked
