"""jaguar end to end on a tiny FluxPipeline: source → weightcache → FluxPipeline → HTTP, as the app runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from huggingface_hub import HfApi
from PIL import Image

from examples.jaguar import pipeline as pipeline_module
from examples.jaguar.pipeline import JaguarModel
from examples.jaguar.server import build_app
from examples.jaguar.weights import REPO, jaguar_source
from weightcache import LocalStore, Source, WeightCache

from .extras import DEVICE, JAGUAR_DTYPE
from .tiny_models import tree_files

# What else the real repository holds beside the diffusers folders: never fetched.
SINGLE_FILE_CHECKPOINTS = {
    "shuttle-jaguar.safetensors": b"\0" * 8192,
    "fp8/shuttle-jaguar-fp8.safetensors": b"\1" * 4096,
}


@pytest.fixture
def source(hub, flux_weights: Path) -> Source:
    """shuttle-jaguar as the app names it, on a fake Hub holding the tiny pipeline."""
    hub.add_repo(REPO, {**tree_files(flux_weights), **SINGLE_FILE_CHECKPOINTS})
    return jaguar_source(endpoint=hub.url)


def start_service(store: Path, source: Source) -> TestClient:
    """Start as the Modal container does, on a local store."""
    return TestClient(
        build_app(WeightCache(LocalStore(store)), source, device=DEVICE, dtype=getattr(torch, JAGUAR_DTYPE))
    )


def generate(service: TestClient, **body: object) -> Image.Image:
    response = service.post("/generate", json={"prompt": "white cat", "width": 16, "height": 16, **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_first_start_fetches_only_the_diffusers_files_and_later_starts_use_the_volume(
    hub, source: Source, flux_weights: Path, tmp_path: Path
) -> None:
    first = start_service(tmp_path / "volume", source).get("/info").json()
    requests_after_first = hub.count()
    later = start_service(tmp_path / "volume", source).get("/info").json()

    assert first["source"] == "huggingface"
    assert later["source"] == "volume"
    assert hub.count() == requests_after_first  # a warm start asks the Hub nothing
    assert later["revision"] == first["revision"] == hub_sha(hub)
    assert later["model"] == source.uri
    assert (later["device"], later["dtype"], later["loader"]) == (DEVICE, JAGUAR_DTYPE, "weightcache")
    cached = WeightCache(LocalStore(tmp_path / "volume")).ensure(source)
    assert sorted(record.path for record in cached.manifest.files) == sorted(tree_files(flux_weights))


def hub_sha(hub) -> str:
    """The commit ``main`` points at on the fake Hub, as the Hub API reports it."""
    return HfApi(endpoint=hub.url).repo_info(REPO).sha


def test_generate_returns_a_png_of_the_size_asked_and_the_seed_reproduces_it(
    source: Source, tmp_path: Path
) -> None:
    service = start_service(tmp_path / "volume", source)

    first = generate(service, seed=7, steps=2, width=32, height=16)
    again = generate(service, seed=7, steps=2, width=32, height=16)
    other = generate(service, seed=8, steps=2, width=32, height=16)

    assert first.size == (32, 16)
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_generate_reports_the_random_seed_it_picked(source: Source, tmp_path: Path) -> None:
    service = start_service(tmp_path / "volume", source)

    response = service.post("/generate", json={"prompt": "white cat", "width": 16, "height": 16, "steps": 1})
    seed = int(response.headers["X-Seed"])

    assert (
        generate(service, seed=seed, steps=1).tobytes() == Image.open(io.BytesIO(response.content)).tobytes()
    )
    assert float(response.headers["X-Generation-Seconds"]) > 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"prompt": "", "width": 16, "height": 16}, "at least 1 character"),
        ({"prompt": "cat", "width": 17, "height": 16}, "multiples of 2"),
        ({"prompt": "cat", "steps": 0}, "greater than or equal to 1"),
    ],
    ids=["empty-prompt", "odd-size", "no-steps"],
)
def test_bad_generate_requests_get_a_422(source: Source, tmp_path: Path, body: dict, says: str) -> None:
    response = start_service(tmp_path / "volume", source).post("/generate", json=body)

    assert response.status_code == 422
    assert says in json.dumps(response.json()["detail"])


def test_reload_model_fetches_the_current_revision_and_keeps_serving(
    hub, source: Source, flux_weights: Path, tmp_path: Path
) -> None:
    service = start_service(tmp_path / "volume", source)
    before = service.get("/info").json()
    hub.commit(
        REPO,
        {
            "scheduler/scheduler_config.json": (flux_weights / "scheduler/scheduler_config.json").read_bytes()
            + b"\n"
        },
    )

    reloaded = service.post("/reload-model")

    assert reloaded.status_code == 200
    assert reloaded.json()["source"] == "huggingface"
    assert reloaded.json()["revision"] == hub_sha(hub) != before["revision"]
    assert service.get("/info").json() == reloaded.json()
    assert generate(service, seed=3, steps=1).size == (16, 16)


def test_a_failed_reload_answers_503_in_one_line_and_the_loaded_model_keeps_serving(
    hub, source: Source, tmp_path: Path
) -> None:
    service = start_service(tmp_path / "volume", source)
    hub.failing = 503

    reloaded = service.post("/reload-model")

    assert reloaded.status_code == 503
    assert reloaded.json()["detail"].startswith("cannot reach the Hugging Face Hub at ")
    assert service.get("/info").json()["source"] == "huggingface"
    assert generate(service, seed=1, steps=1).size == (16, 16)


class FakePipeline:
    """Stands in for a FluxPipeline on a GPU: records where it was moved; ``fail_on`` refuses a device."""

    vae_scale_factor = 8

    def __init__(self, name: str, moves: list[tuple[str, str]], fail_on: str | None = None) -> None:
        self.name, self.moves, self.fail_on = name, moves, fail_on

    def to(self, device: str) -> FakePipeline:
        if device == self.fail_on:
            raise RuntimeError("CUDA out of memory")
        self.moves.append((self.name, device))
        return self


def fake_gpu_model(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipelines: list
) -> JaguarModel:
    """A JaguarModel for a CUDA device whose loads hand out ``pipelines`` in turn (nothing touches a GPU)."""
    loads = iter(pipelines)

    def load_pipeline(path: Path, device: str, dtype: torch.dtype) -> tuple[FakePipeline, str]:
        pipeline = next(loads)
        pipeline.moves.append((pipeline.name, f"loaded on {device}"))
        return pipeline, "weightcache"

    monkeypatch.setattr(pipeline_module, "load_pipeline", load_pipeline)
    return JaguarModel(WeightCache(LocalStore(tmp_path / "volume")), source, device="cuda")


def test_reload_loads_the_new_pipeline_before_dropping_the_old(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves: list[tuple[str, str]] = []
    model = fake_gpu_model(
        source, tmp_path, monkeypatch, [FakePipeline("old", moves), FakePipeline("new", moves)]
    )
    model.load()

    info = model.load(force=True)

    assert moves == [
        ("old", "loaded on cuda"),
        ("old", "cuda"),
        ("new", "loaded on cpu"),  # staged while the old one serves
        ("old", "cpu"),
        ("new", "cuda"),
    ]
    assert model.info == info and info.device == "cuda"


def test_a_reload_that_cannot_reach_the_gpu_puts_the_old_pipeline_back(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves: list[tuple[str, str]] = []
    old, new = FakePipeline("old", moves), FakePipeline("new", moves, fail_on="cuda")
    model = fake_gpu_model(source, tmp_path, monkeypatch, [old, new])
    before = model.load()

    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        model.load(force=True)

    assert moves[-2:] == [("old", "cpu"), ("old", "cuda")]
    assert model.info == before
    assert model.size_multiple == 16


def test_info_reports_the_serving_model_while_a_reload_loads(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves: list[tuple[str, str]] = []
    model = fake_gpu_model(
        source, tmp_path, monkeypatch, [FakePipeline("old", moves), FakePipeline("new", moves)]
    )
    before = model.load()
    seen_during_load = []
    real_load = pipeline_module.load_pipeline

    def watching_load(path: Path, device: str, dtype: torch.dtype) -> tuple[FakePipeline, str]:
        seen_during_load.append(model.info)
        return real_load(path, device, dtype)

    monkeypatch.setattr(pipeline_module, "load_pipeline", watching_load)
    model.load(force=True)

    assert seen_during_load == [before]
