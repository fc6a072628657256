"""jaguar's seed interface, served by app.py's ``ShuttleJaguarModel`` as its container serves it.

The class's enter methods run on a FakeModalVolume container with the tiny FluxPipeline on a fake
Hub; each seed endpoint is the app modal builds around the method (``modal_wiring``). The seed's
client (``test_generate.py``) runs against them on a real uvicorn server.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.testclient import TestClient
from PIL import Image

from examples.jaguar import test_generate
from examples.jaguar.weights import REPO
from weightcache.testing import FakeModalVolume

from . import modal_wiring
from .tiny_models import tree_files

SEED_ENDPOINTS = ("generate-api", "batch-api", "info", "reload-model")
SMALL = {"height": 16, "width": 16, "steps": 1}


@pytest.fixture
def start_container(
    hub, flux_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Start a container of app.py's ShuttleJaguarModel on one fake Volume; returns (module, instance)."""
    hub.add_repo(REPO, tree_files(flux_weights))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    volume = FakeModalVolume(tmp_path / "volume", name="jaguar-model-weights")
    containers = []

    def start(*, snapshot: bool = False, restore: bool = True) -> tuple[Any, Any, Any]:
        monkeypatch.setenv("EXAMPLES_MEMORY_SNAPSHOT", "1" if snapshot else "0")
        module = modal_wiring.import_app("examples/jaguar/app.py")
        container = volume.container()
        containers.append(container)
        module.volume, module.CACHE_MOUNT = container, str(container.mount_path)
        obj = modal_wiring.instance(module, "ShuttleJaguarModel")
        modal_wiring.enter(obj, snap=True)
        if restore:
            modal_wiring.enter(obj, snap=False)
        return container, obj, module

    yield start
    for container in containers:
        container.exit()


def seed_clients(obj: Any) -> dict[str, TestClient]:
    return {
        name: TestClient(modal_wiring.endpoint_app(obj, name.replace("-", "_"))) for name in SEED_ENDPOINTS
    }


def decode(image: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(image)))


def test_info_says_where_the_model_came_from_in_the_seeds_shape(start_container) -> None:
    _, first, _ = start_container()
    _, later, _ = start_container()

    info = seed_clients(first)["info"].get("/").json()
    later_info = seed_clients(later)["info"].get("/").json()

    assert info == {
        "model": "shuttleai/shuttle-jaguar",
        "version": "bfloat16",
        "parameters": "8B",
        "format": "diffusers",
        "capabilities": ["text-to-image"],
        "recommended_settings": {
            "height": 1024,
            "width": 1024,
            "guidance_scale": 3.5,
            "steps": 4,
            "max_seq_length": 256,
        },
        "source": "huggingface",
        "volume_path": info["volume_path"],
    }
    assert later_info["source"] == "volume"
    assert Path(info["volume_path"], "model_index.json").is_file()


def test_generate_api_answers_a_base64_png_with_the_parameters_and_time(start_container) -> None:
    _, obj, _ = start_container()
    generate = seed_clients(obj)["generate-api"]

    answer = generate.get("/", params={"prompt": "white cat", "seed": 7, "max_seq_length": 32, **SMALL})
    again = generate.get("/", params={"prompt": "white cat", "seed": 7, "max_seq_length": 32, **SMALL})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"image", "parameters", "generation_time"}
    assert body["parameters"] == {
        "prompt": "white cat",
        "height": 16,
        "width": 16,
        "guidance_scale": 3.5,
        "num_steps": 1,
        "max_seq_length": 32,
        "seed": 7,
    }
    assert body["generation_time"] == round(body["generation_time"], 2) >= 0
    assert decode(body["image"]).size == (16, 16)
    assert decode(body["image"]).tobytes() == decode(again.json()["image"]).tobytes()


def test_batch_api_gives_prompt_i_the_seed_base_seed_plus_i(start_container) -> None:
    _, obj, _ = start_container()
    clients = seed_clients(obj)

    batch = clients["batch-api"].post("/", json={"prompts": ["cat", "dog"], "base_seed": 5, **SMALL})
    single = clients["generate-api"].get("/", params={"prompt": "dog", "seed": 6, **SMALL})

    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert [(r["prompt"], r["seed"]) for r in body["results"]] == [("cat", 5), ("dog", 6)]
    assert body["images_generated"] == 2
    assert body["parameters"]["base_seed"] == 5 and body["total_generation_time"] >= 0
    assert decode(body["results"][1]["image"]).tobytes() == decode(single.json()["image"]).tobytes()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"prompts": []}, "prompts must be a non-empty list of strings"),
        ({"prompts": ["cat"], "width": 17, **{"height": 16}}, "width must be a multiple of 2"),
    ],
    ids=["empty-prompts", "odd-width"],
)
def test_batch_api_refuses_a_bad_request_in_one_sentence(start_container, body: dict, says: str) -> None:
    _, obj, _ = start_container()

    answer = seed_clients(obj)["batch-api"].post("/", json=body)

    assert answer.status_code == 400
    assert answer.json()["detail"].startswith(says)


def test_reload_model_refetches_and_a_failed_reload_keeps_the_old_model_serving(
    start_container, hub, flux_weights: Path
) -> None:
    _, obj, _ = start_container()
    clients = seed_clients(obj)
    config = flux_weights / "scheduler/scheduler_config.json"
    hub.commit(REPO, {"scheduler/scheduler_config.json": config.read_bytes() + b"\n"})

    reloaded = clients["reload-model"].post("/")
    path_after_reload = clients["info"].get("/").json()["volume_path"]
    hub.commit(REPO, {"transformer/config.json": b"{not json"})
    broken = clients["reload-model"].post("/")

    assert reloaded.status_code == 200 and reloaded.json()["status"] == "success"
    assert broken.status_code == 500
    assert broken.json()["detail"].startswith("reload failed, the loaded model keeps serving: ")
    assert clients["info"].get("/").json()["volume_path"] == path_after_reload
    assert clients["generate-api"].get("/", params={"prompt": "cat", **SMALL}).status_code == 200


def test_memory_snapshot_loads_on_the_cpu_and_lets_go_of_the_volume_before_the_snapshot(
    start_container,
) -> None:
    container, obj, module = start_container(snapshot=True, restore=False)
    loaded_before_snapshot = obj.model.info

    container.reload()  # Modal refuses while a file of the Volume is open or mapped
    modal_wiring.enter(obj, snap=False)
    answer = seed_clients(obj)["generate-api"].get("/", params={"prompt": "cat", **SMALL})

    assert module.app.name == "shuttle-jaguar"
    assert loaded_before_snapshot.device == "cpu"
    assert answer.status_code == 200
    assert seed_clients(obj)["info"].get("/").json()["source"] == "huggingface"


def test_without_snapshots_both_enter_methods_run_after_start_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXAMPLES_MEMORY_SNAPSHOT", "0")
    module = modal_wiring.import_app("examples/jaguar/app.py")
    obj = modal_wiring.instance(module, "ShuttleJaguarModel")

    assert modal_wiring.enter(obj, snap=True) == []
    assert [name for name in vars(type(obj)) if name in ("prepare", "start")] == ["prepare", "start"]
    assert list(modal_wiring.web_endpoints(type(obj))) == [
        "web",
        "generate_api",
        "batch_api",
        "info",
        "reload_model",
    ]


def test_seed_client_reports_and_saves_test_output_png(start_container, serve, tmp_path: Path) -> None:
    _, obj, _ = start_container()
    url = serve(
        modal_wiring.by_first_segment(
            {n: modal_wiring.endpoint_app(obj, n.replace("-", "_")) for n in SEED_ENDPOINTS}
        )
    )
    script = tmp_path / "client" / "test_generate.py"
    script.parent.mkdir()
    shutil.copy(test_generate.__file__, script)

    first = run_client(script, ["--url", url, "--size", "16"], tmp_path)
    second = run_client(script, ["--size", "16"], tmp_path)

    assert first.returncode == 0, first.stderr
    assert (script.parent / ".api_url").read_text().strip() == url
    assert "model: shuttleai/shuttle-jaguar (8B, bfloat16, diffusers)" in first.stdout
    assert "loaded from the volume: no, from huggingface" in first.stdout
    assert "generation time: " in first.stdout
    assert second.returncode == 0, second.stderr
    assert Image.open(tmp_path / "test_output.png").size == (16, 16)


def run_client(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def stub_service() -> Any:
    """A stand-in for Modal's edge: ``/slow/*`` answers 303 to the real endpoint (as after 150 s),
    ``/broken/*`` answers an HTML 502, ``/<endpoint>`` answers canned seed JSON."""
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(png, format="PNG")
    answers = {
        "info": {
            "model": REPO,
            "parameters": "8B",
            "version": "bfloat16",
            "format": "diffusers",
            "source": "volume",
            "volume_path": "/cache/x",
        },
        "generate-api": {
            "image": base64.b64encode(png.getvalue()).decode(),
            "generation_time": 0.5,
            "parameters": {"seed": 1, "num_steps": 4},
        },
    }
    app = FastAPI()

    @app.get("/slow/{endpoint}")
    def slow(endpoint: str, request: Request) -> RedirectResponse:
        return RedirectResponse(f"/{endpoint}?{request.url.query}", status_code=303)

    @app.get("/broken/{endpoint}")
    def broken(endpoint: str) -> HTMLResponse:
        return HTMLResponse("<html><body>502 Bad Gateway</body></html>", status_code=502)

    @app.get("/{endpoint}")
    def answer(endpoint: str) -> dict:
        return answers[endpoint]

    return app


def test_seed_client_follows_modals_303_and_reports_a_non_json_error_in_one_line(
    serve, tmp_path: Path
) -> None:
    url = serve(stub_service())
    script = tmp_path / "test_generate.py"
    shutil.copy(test_generate.__file__, script)

    slow = run_client(script, ["--url", url + "/slow"], tmp_path)
    broken = run_client(script, ["--url", url + "/broken"], tmp_path)

    assert slow.returncode == 0, slow.stderr
    assert "loaded from the volume: yes" in slow.stdout
    assert broken.returncode == 1
    assert (
        broken.stderr.strip()
        == f"error: {url}/broken/info answered 502: <html><body>502 Bad Gateway</body></html>"
    )


def test_seed_client_builds_the_seed_urls_from_the_modal_prefix() -> None:
    base = "https://me--shuttle-jaguar"

    assert test_generate.endpoint_url(base, "generate-api") == (
        "https://me--shuttle-jaguar-shuttlejaguarmodel-generate-api.modal.run"
    )
    assert test_generate.endpoint_url("http://127.0.0.1:8000", "info") == "http://127.0.0.1:8000/info"


def test_seed_client_without_a_url_says_how_to_give_one(tmp_path: Path) -> None:
    script = tmp_path / "test_generate.py"
    shutil.copy(test_generate.__file__, script)

    done = run_client(script, [], tmp_path)

    assert done.returncode == 1
    assert done.stderr.strip() == f"no URL yet: pass --url once (it is saved to {tmp_path / '.api_url'})"
