"""A URL source is identified by its whole URL: different URLs never share an entry.

Secrets enter the identity only as digests; redaction is for what is shown. A pinned or named
(``#id=``) pre-signed link keeps its entry when its signature rotates.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from weightcache import InvalidSourceError, URLSource, WeightCache
from weightcache._transport.redaction import (
    SECRET_PARAMETERS,
    install_log_redaction,
    is_secret_parameter,
    redact_url,
)
from weightcache.testing import FileServer

A, B = b"bytes of models/a.bin", b"bytes of models/b.bin, another file"


def store_text(store_dir: Path) -> str:
    """Manifests and refs: everything in the store besides the cached files."""
    return "".join(
        path.read_text(errors="replace")
        for path in store_dir.rglob("*.json")
        if "files" not in path.relative_to(store_dir).parts
    )


@pytest.mark.parametrize("parameter", ["key", "design", "author", "session_id", "keyword", "signed"])
def test_urls_differing_in_a_parameter_get_their_own_entries(cache: WeightCache, parameter: str) -> None:
    with FileServer() as server:
        url_a = server.add(f"/dl?{parameter}=models/a.bin", A)
        url_b = server.add(f"/dl?{parameter}=models/b.bin", B)
        first = cache.ensure(url_a)
        second = cache.ensure(url_b)
        assert first.file().read_bytes() == A
        assert second.file().read_bytes() == B and not second.hit
        assert first.key != second.key
        assert cache.ensure(url_a).file().read_bytes() == A  # and the first stays a's


def test_urls_differing_only_in_a_secret_get_their_own_entries(
    cache: WeightCache, store_dir: Path, cli
) -> None:
    with FileServer() as server:
        url_a = server.add("/dl?token=TOKEN-FOR-A", A)
        url_b = server.add("/dl?token=TOKEN-FOR-B", B)
        first, second = cache.ensure(url_a), cache.ensure(url_b)
        assert (first.file().read_bytes(), second.file().read_bytes()) == (A, B)
        listed = cli("ls", "--store", store_dir, "--json").output
    shown = [first.source, second.source, store_text(store_dir), listed]
    assert "TOKEN-FOR" not in "".join(shown)
    assert first.source != second.source  # told apart by the digests of their tokens


def test_a_pinned_presigned_link_keeps_its_entry_when_its_signature_rotates(cache: WeightCache) -> None:
    pin = hashlib.sha256(A).hexdigest()
    with FileServer() as server:
        server.add("/bucket/a.bin", A)
        signed = server.url_for("/bucket/a.bin?X-Amz-Date={}&X-Amz-Signature={}")
        first = cache.ensure(signed.format("20260101", "SIG1") + f"#sha256={pin}")
        served = server.count()
        again = cache.ensure(signed.format("20260202", "SIG2") + f"#sha256={pin}")
        assert again.hit and again.key == first.key and server.count() == served


def test_pinned_urls_differing_in_a_parameter_stay_apart_through_gc(cache: WeightCache) -> None:
    with FileServer() as server:
        url_a = server.add("/dl?key=models/a.bin", A) + f"#sha256={hashlib.sha256(A).hexdigest()}"
        url_b = server.add("/dl?key=models/b.bin", B) + f"#sha256={hashlib.sha256(B).hexdigest()}"
        first, second = cache.ensure(url_a), cache.ensure(url_b)
    assert first.source != second.source
    assert cache.gc(keep=1).removed == []  # two sources, one version each: nothing to collect
    assert (first.file().read_bytes(), second.file().read_bytes()) == (A, B)


def test_a_named_presigned_link_keeps_its_entry_when_its_signature_rotates(cache: WeightCache) -> None:
    with FileServer() as server:
        server.add("/bucket/a.bin", A)
        signed = server.url_for("/bucket/a.bin?X-Amz-Date={}&X-Amz-Signature={}#id=team-a-weights")
        first = cache.ensure(signed.format("20260101", "SIG1"))
        downloads = server.count("/bucket/a.bin")
        again = cache.ensure(URLSource(signed.format("20260202", "SIG2").split("#")[0], id="team-a-weights"))
        assert again.hit and again.key == first.key
        assert server.count("/bucket/a.bin") == downloads + 1  # one probe of the new link, no download
    assert "SIG" not in first.source and "#id=team-a-weights" in first.source


def test_without_a_pin_or_a_name_a_rotated_signature_is_a_new_url(cache: WeightCache) -> None:
    with FileServer() as server:
        server.add("/bucket/a.bin", A)
        first = cache.ensure(server.url_for("/bucket/a.bin?X-Amz-Signature=SIG1"))
        second = cache.ensure(server.url_for("/bucket/a.bin?X-Amz-Signature=SIG2"))
    assert first.key != second.key and not second.hit


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("key", False),
        ("design", False),
        ("author", False),
        ("monkey", False),
        ("signed", False),
        ("token", True),
        ("%74oken", True),
        ("%54OKEN", True),
        ("PASS", True),
        ("jwt", True),
        ("hmac", True),
        ("X-Amz-Signature", True),
        ("X-Amz-Credential", True),
        ("X-Amz-Security-Token", True),
        ("X-Goog-Signature", True),
        ("api_key", True),
    ],
)
def test_secret_parameters_match_by_whole_decoded_name(name: str, secret: bool) -> None:
    assert is_secret_parameter(name) is secret
    assert ("VALUE" in redact_url(f"https://h/f?{name}=VALUE")) is not secret


def test_the_secret_list_is_the_documented_one() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "sources.md").read_text()
    assert all(f"`{name}`" in docs for name in SECRET_PARAMETERS)


@pytest.mark.parametrize("query", ["pass=PWSECRET", "jwt=JWTSECRET", "hmac=HMSECRET", "%74oken=TKSECRET"])
def test_secret_values_stay_out_of_json_manifests_and_refs(store_dir: Path, cli, query: str) -> None:
    with FileServer() as server:
        server.add("/model.bin", A)
        url = server.url_for(f"/model.bin?{query}&v=1")
        outputs = [
            cli("ensure", url, "--store", store_dir, "--json").output,
            cli("status", url, "--store", store_dir, "--json").output,
            cli("ls", "--store", store_dir, "--json").output,
        ]
    assert json.loads(outputs[0])  # the ensure worked
    secret = query.partition("=")[2]
    assert secret not in "".join(outputs) + store_text(store_dir)


@pytest.mark.parametrize("password", ["pa#ssSECRET", "pa?ssSECRET", "p#a?ssSECRET"])
def test_a_password_with_an_unencoded_hash_or_question_mark_is_never_echoed(
    store_dir: Path, cli, password: str
) -> None:
    url = f"https://alice:{password}@example.com/model.bin"
    with pytest.raises(InvalidSourceError) as caught:
        URLSource(url)
    assert "SECRET" not in str(caught.value) and "percent-encode" in str(caught.value)
    result = cli("ensure", url, "--store", store_dir)
    assert result.exit_code == 1 and "SECRET" not in result.output


def test_a_name_too_long_for_the_filesystem_is_one_sentence(store_dir: Path, cli) -> None:
    url = "https://example.com/model.bin#name=" + "n" * 300
    with pytest.raises(InvalidSourceError, match="longer than a filesystem allows"):
        URLSource(url)
    result = cli("ensure", url, "--store", store_dir)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not store_dir.exists()


def test_a_file_and_folder_clash_among_the_urls_is_one_sentence(store_dir: Path, cli) -> None:
    with pytest.raises(InvalidSourceError, match="both a file and a folder"):
        URLSource({"a": "https://example.com/a", "a/b": "https://example.com/b"})
    uri = "https://example.com/x#name=a | https://example.com/y#name=a/b"
    result = cli("ensure", uri, "--store", store_dir)
    assert result.exit_code == 1 and "both a file and a folder" in result.output


@pytest.mark.parametrize("url", ["https://[::1/x.bin", "https://host:99999/x.bin", "https://host:port/x.bin"])
def test_a_malformed_host_is_one_sentence(url: str) -> None:
    with pytest.raises(InvalidSourceError, match="not a valid http"):
        URLSource(url)


def test_log_redaction_survives_an_unparseable_url(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()  # what the HTTP modules do when imported
    caplog.set_level(logging.INFO)
    logging.getLogger("weightcache.test").info("fetching %s", "https://u:SECRETPW@[::1/x.bin")
    assert "fetching https://" in caplog.text and "SECRETPW" not in caplog.text
