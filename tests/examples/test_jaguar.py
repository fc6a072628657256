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
from PIL import Image

from examples.jaguar import test_generate
from examples.jaguar.pipeline import JaguarModel
from examples.jaguar.server import create_app
from weightcache import ImageDirSource, LocalStore, Source, WeightCache


@pytest.fixture
def jaguar_source(flux_weights: Path) -> Source:
    return ImageDirSource(flux_weights)


def start_service(store: Path, source: Source) -> TestClient:
    """What the Modal container does at start: load the model through weightcache, build the app."""
    model = JaguarModel(WeightCache(LocalStore(store)), source, device="cpu", dtype=torch.float32)
    model.load()
    return TestClient(create_app(model))


def generate(service: TestClient, **body: object) -> Image.Image:
    response = service.post("/generate", json={"prompt": "white cat", "width": 16, "height": 16, **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_info_says_fetched_on_the_first_start_and_volume_after(jaguar_source: Source, tmp_path: Path) -> None:
    first = start_service(tmp_path / "volume", jaguar_source).get("/info").json()
    later = start_service(tmp_path / "volume", jaguar_source).get("/info").json()

    assert first["source"] == "image"
    assert later["source"] == "volume"
    assert later["revision"] == first["revision"]
    assert later["model"] == jaguar_source.uri
    assert later["device"] == "cpu" and later["dtype"] == "float32"


def test_generate_returns_a_png_of_the_size_asked_and_the_seed_reproduces_it(
    jaguar_source: Source, tmp_path: Path
) -> None:
    service = start_service(tmp_path / "volume", jaguar_source)

    first = generate(service, seed=7, steps=2, width=32, height=16)
    again = generate(service, seed=7, steps=2, width=32, height=16)
    other = generate(service, seed=8, steps=2, width=32, height=16)

    assert first.size == (32, 16)
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_generate_reports_the_random_seed_it_picked(jaguar_source: Source, tmp_path: Path) -> None:
    service = start_service(tmp_path / "volume", jaguar_source)

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
def test_bad_generate_requests_get_a_422(
    jaguar_source: Source, tmp_path: Path, body: dict, says: str
) -> None:
    response = start_service(tmp_path / "volume", jaguar_source).post("/generate", json=body)

    assert response.status_code == 422
    assert says in json.dumps(response.json()["detail"])


def test_reload_model_fetches_again_and_keeps_serving(jaguar_source: Source, tmp_path: Path) -> None:
    service = start_service(tmp_path / "volume", jaguar_source)
    before = generate(service, seed=3, steps=1)

    reloaded = service.post("/reload-model")

    assert reloaded.status_code == 200
    assert reloaded.json()["source"] == "image"
    assert service.get("/info").json() == reloaded.json()
    assert generate(service, seed=3, steps=1).tobytes() == before.tobytes()


def test_a_failed_reload_answers_503_and_the_loaded_model_keeps_serving(
    flux_weights: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "weights"
    moved.symlink_to(flux_weights, target_is_directory=True)
    service = start_service(tmp_path / "volume", ImageDirSource(moved))
    moved.unlink()

    reloaded = service.post("/reload-model")

    assert reloaded.status_code == 503
    assert reloaded.json()["detail"] == f"source path {moved} does not exist; check the path"
    assert generate(service, seed=1, steps=1).size == (16, 16)


def test_test_generate_script_remembers_the_url_and_saves_the_image_without_a_display(
    jaguar_source: Source, tmp_path: Path, serve
) -> None:
    url = serve(start_service(tmp_path / "volume", jaguar_source).app)
    config = tmp_path / "config.json"
    size = ["--width", "16", "--height", "16", "--config", str(config)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no DISPLAY: --display must save instead

    first = _run_script(["--url", url, *size], env, tmp_path)
    second = _run_script(["--display", "--output", str(tmp_path / "cat.png"), *size], env, tmp_path)

    assert first.returncode == 0, first.stderr
    assert json.loads(config.read_text()) == {"url": url}
    assert "loaded from the volume: no, fetched from image" in first.stdout
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
