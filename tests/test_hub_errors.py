"""huggingface_hub's failures become weightcache's errors by their type, never by their wording."""

from __future__ import annotations

import errno
import os

import pytest

from weightcache import HFSource, SizeMismatchError, StoreFullError, WeightCache
from weightcache.providers.sources import _hf_client as hf_client
from weightcache.testing import FakeHub

WEIGHTS = os.urandom(100_000)


def test_a_download_of_the_wrong_size_is_a_size_mismatch(cache: WeightCache) -> None:
    with FakeHub() as hub:
        hub.add_repo("acme/tiny", {"model.safetensors": WEIGHTS})
        hub.cdn.add(hub.cdn_path("acme/tiny", "model.safetensors"), WEIGHTS[:-10])  # the CDN is short
        with pytest.raises(SizeMismatchError, match="wrong size") as caught:
            cache.ensure(HFSource("acme/tiny", endpoint=hub.url))
    assert "\n" not in str(caught.value)
    assert cache.list() == []


@pytest.mark.parametrize(
    "error",
    [
        OSError("Consistency check failed: file should be of size 10 but has size 9"),
        OSError("the download came out at 9 bytes, 10 were expected"),  # a reworded message
    ],
)
def test_the_size_check_is_recognised_by_type_not_wording(
    cache: WeightCache, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    def fail(*args: object, **kwargs: object) -> str:
        raise error

    monkeypatch.setattr(hf_client, "hf_hub_download", fail)
    with FakeHub() as hub:
        hub.add_repo("acme/tiny", {"model.safetensors": WEIGHTS})
        with pytest.raises(SizeMismatchError):
            cache.ensure(HFSource("acme/tiny", endpoint=hub.url))


def test_an_os_error_of_the_machine_is_not_taken_for_a_size_mismatch(
    cache: WeightCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> str:
        raise OSError(errno.ENOSPC, "Consistency check failed: no space left on device")

    monkeypatch.setattr(hf_client, "hf_hub_download", fail)
    with FakeHub() as hub:
        hub.add_repo("acme/tiny", {"model.safetensors": WEIGHTS})
        with pytest.raises(StoreFullError):  # what a full disk is, whatever the message says
            cache.ensure(HFSource("acme/tiny", endpoint=hub.url))
