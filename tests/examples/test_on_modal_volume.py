"""Both apps' container start on a Modal Volume (weightcache's FakeModalVolume), wired as app.py
wires it: the first container populates the Volume and commits, the next one finds the weights there;
or ``weightcache push`` populates it from a laptop and no container ever asks the Hub."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from examples.fashion_crop import client
from examples.fashion_crop.server import build_app as build_fashion_crop
from examples.fashion_crop.weights import image_placements
from examples.jaguar.server import build_app as build_jaguar
from examples.jaguar.weights import REPO, jaguar_source
from weightcache import WeightCache
from weightcache.providers.stores import remote_volume
from weightcache.providers.stores.modal_volume import ModalVolumeStore
from weightcache.testing import FakeModalVolume

from .extras import DEVICE, JAGUAR_DTYPE
from .tiny_models import tree_files


def test_fashion_crop_first_container_promotes_the_image_and_the_next_reads_the_volume(
    baked_weights: Path, tmp_path: Path
) -> None:
    volume = FakeModalVolume(tmp_path / "volume", name="fashion-model-weights")
    answers = []
    for number in (1, 2):
        with volume.container() as container:
            cache = WeightCache(ModalVolumeStore(container, container.mount_path))
            app = build_fashion_crop(
                cache,
                image_placements(str(baked_weights)),
                link_to=str(tmp_path / f"c{number}"),
                device=DEVICE,
            )
            service = TestClient(app)
            crop = service.post(
                "/crop",
                files={"image": ("o.png", client.png_bytes(client.example_outfit()))},
                data={"categories": "shirt"},
            )
            answers.append((service.get("/").json()["weights"]["origin"], crop.status_code))

    assert answers == [("image", 200), ("volume", 200)]


def test_jaguar_first_container_fetches_from_the_hub_and_the_next_asks_the_hub_nothing(
    hub, flux_weights: Path, tmp_path: Path
) -> None:
    hub.add_repo(REPO, tree_files(flux_weights))
    volume = FakeModalVolume(tmp_path / "volume", name="jaguar-model-weights")
    sources, requests = [], []
    for _ in (1, 2):
        with volume.container() as container:
            cache = WeightCache(ModalVolumeStore(container, container.mount_path))
            service = TestClient(
                build_jaguar(
                    cache, jaguar_source(endpoint=hub.url), device=DEVICE, dtype=getattr(torch, JAGUAR_DTYPE)
                )
            )
            sources.append(service.get("/info").json()["source"])
            requests.append(hub.count())
            assert (
                service.post("/generate", json={"prompt": "cat", "width": 16, "height": 16}).status_code
                == 200
            )

    assert sources == ["huggingface", "volume"]
    assert requests[1] == requests[0]


def test_jaguar_pushed_from_a_laptop_starts_its_first_container_without_the_hub(
    hub, flux_weights: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo(REPO, tree_files(flux_weights))
    volume = FakeModalVolume(tmp_path / "volume", name="jaguar-model-weights")
    monkeypatch.setattr(remote_volume, "open_volume", lambda name, create=False: volume)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)

    pushed = cli(
        "push", jaguar_source().uri, "--modal-volume", "jaguar-model-weights", "--store", tmp_path / "laptop"
    )
    requests_after_push = hub.count()
    with volume.container() as container:
        cache = WeightCache(ModalVolumeStore(container, container.mount_path))
        service = TestClient(
            build_jaguar(cache, jaguar_source(), device=DEVICE, dtype=getattr(torch, JAGUAR_DTYPE))
        )
        info = service.get("/info").json()

    assert pushed.exit_code == 0, pushed.stderr
    assert info["source"] == "volume"
    assert hub.count() == requests_after_push
