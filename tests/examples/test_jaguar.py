"""jaguar end to end on a tiny FluxPipeline: source → weightcache → FluxPipeline → HTTP, as the app runs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from huggingface_hub import HfApi
from PIL import Image

from examples.jaguar import test_generate
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
    assert (later["device"], later["dtype"]) == (DEVICE, JAGUAR_DTYPE)
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


def test_test_generate_script_remembers_the_url_and_saves_the_image_without_a_display(
    source: Source, tmp_path: Path, serve
) -> None:
    url = serve(start_service(tmp_path / "volume", source).app)
    config = tmp_path / "config.json"
    size = ["--width", "16", "--height", "16", "--config", str(config)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no DISPLAY: --display must save instead

    first = _run_script(["--url", url, *size], env, tmp_path)
    second = _run_script(["--display", "--output", str(tmp_path / "cat.png"), *size], env, tmp_path)

    assert first.returncode == 0, first.stderr
    assert json.loads(config.read_text()) == {"url": url}
    assert "loaded from the volume: no, fetched from huggingface" in first.stdout
    assert "generated 16x16 in" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"no display here: saved the image to {tmp_path / 'cat.png'}" in second.stdout
    assert Image.open(tmp_path / "cat.png").size == (16, 16)


def test_test_generate_script_without_a_url_says_how_to_give_one(tmp_path: Path) -> None:
    done = _run_script(["--config", str(tmp_path / "none.json")], {"PATH": "/usr/bin:/bin"}, tmp_path)

    assert done.returncode == 1
    assert done.stderr.strip() == f"no URL yet: pass --url once (it is saved to {tmp_path / 'none.json'})"


def _run_script(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, test_generate.__file__, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )
