"""jaguar's seed interface, served by app.py's ``ShuttleJaguarModel`` in its Modal container.

The app runs as ``modal deploy examples/jaguar/app.py`` would run it (``in_container``): a cold
container on an empty FakeModalVolume fetches the tiny FluxPipeline from a fake Hub, a second one
(deployed with memory snapshots: snap phase, then restore) finds it on the Volume and serves every
test here. The seed's client (``test_generate.py``) runs against it through a real uvicorn server.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from PIL import Image

from examples.jaguar import test_generate
from examples.jaguar.weights import REPO
from weightcache.testing import FakeHub
from weightcache.testing.modal_container import ContainerStartError, ModalContainer

from . import in_container
from .tiny_models import tree_files

APP = "examples/jaguar/app.py"
SMALL = {"height": 16, "width": 16, "steps": 1}


@dataclass
class Deployed:
    """The fake Hub, what the cold container answered, and the warm container every test uses."""

    hub: FakeHub
    weights: Path
    cold: ModalContainer
    cold_info: dict[str, Any]
    hub_requests_after_cold: int
    hub_requests_after_warm: int
    warm: ModalContainer


@pytest.fixture(scope="module")
def jaguar(flux_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """A cold container (snapshots off), stopped; then a warm one (snapshots on) on the same Volume."""
    state = tmp_path_factory.mktemp("jaguar-modal")
    with FakeHub() as hub:
        hub.add_repo(REPO, tree_files(flux_weights))
        secrets = {"HF_ENDPOINT": hub.url}
        with in_container.container(
            APP, "ShuttleJaguarModel", state, snapshot=False, secret_env=secrets
        ) as cold:
            cold_info = cold.request("GET", "/", endpoint="info").json()
        after_cold = hub.count()
        warm = in_container.container(
            APP, "ShuttleJaguarModel", state, snapshot=True, secret_env=secrets
        ).start()
        try:
            yield Deployed(hub, flux_weights, cold, cold_info, after_cold, hub.count(), warm)
        finally:
            warm.stop()


def decode(image: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(image)))


def test_a_cold_container_fetches_from_the_hub_and_the_next_finds_the_model_on_the_volume(
    jaguar: Deployed,
) -> None:
    warm_info = jaguar.warm.request("GET", "/", endpoint="info").json()

    assert jaguar.cold_info == {
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
        "volume_path": jaguar.cold_info["volume_path"],
    }
    assert jaguar.cold_info["volume_path"].startswith("/cache/entries/")
    entry = jaguar.cold_info["volume_path"].removeprefix("/cache/")
    assert "model_index.json" in {
        Path(item.path).name for item in jaguar.cold.volume("jaguar-model-weights").listdir(entry)
    }
    assert warm_info["source"] == "volume" and warm_info["volume_path"] == jaguar.cold_info["volume_path"]
    assert (
        jaguar.hub_requests_after_warm == jaguar.hub_requests_after_cold
    )  # a warm start asks the Hub nothing


def test_enter_methods_run_in_modals_order_and_the_snapshot_holds_no_volume_file(jaguar: Deployed) -> None:
    # Without snapshots both methods are snap=False and run at start in definition order; with them,
    # prepare runs before the snapshot and must leave no file of the Volume open or mapped.
    assert jaguar.cold.entered == {"pre_snapshot": [], "post_snapshot": ["prepare", "start"]}
    assert jaguar.warm.entered == {"pre_snapshot": ["prepare"], "post_snapshot": ["start"]}
    assert jaguar.warm.open_at_snapshot == []
    assert jaguar.warm.endpoints == ["web", "generate_api", "batch_api", "info", "reload_model"]


def test_the_app_of_commit_18215b8_crashes_in_its_container_and_the_current_one_starts(
    jaguar: Deployed, tmp_path: Path
) -> None:
    # That app computed the checkout's path at import: fine here, an IndexError at /root/app.py.
    old = ModalContainer(
        "tests/modal_apps/jaguar_18215b8/app.py", "JaguarService", state_dir=tmp_path, cwd=in_container.REPO
    )
    with pytest.raises(ContainerStartError) as crashed:
        old.start()

    assert crashed.value.phase == "importing the app" and crashed.value.error_type == "IndexError"
    assert 'File "/root/app.py"' in crashed.value.details and "HERE.parents[1]" in crashed.value.details
    assert jaguar.warm.request("GET", "/", endpoint="info").status_code == 200


def test_generate_api_answers_a_base64_png_with_the_parameters_and_time(jaguar: Deployed) -> None:
    params = {"prompt": "white cat", "seed": 7, "max_seq_length": 32, **SMALL}

    answer = jaguar.warm.request("GET", "/", endpoint="generate_api", params=params)
    again = jaguar.warm.request("GET", "/", endpoint="generate_api", params=params)

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


def test_batch_api_gives_prompt_i_the_seed_base_seed_plus_i(jaguar: Deployed) -> None:
    batch = jaguar.warm.request(
        "POST", "/", endpoint="batch_api", json_body={"prompts": ["cat", "dog"], "base_seed": 5, **SMALL}
    )
    single = jaguar.warm.request(
        "GET", "/", endpoint="generate_api", params={"prompt": "dog", "seed": 6, **SMALL}
    )

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
def test_batch_api_refuses_a_bad_request_in_one_sentence(jaguar: Deployed, body: dict, says: str) -> None:
    answer = jaguar.warm.request("POST", "/", endpoint="batch_api", json_body=body)

    assert answer.status_code == 400
    assert answer.json()["detail"].startswith(says)


def test_the_richer_api_is_served_by_the_same_container(jaguar: Deployed) -> None:
    info = jaguar.warm.request("GET", "/info", endpoint="web").json()
    image = jaguar.warm.request("POST", "/generate", endpoint="web", json_body={"prompt": "cat", **SMALL})

    assert info["source"] == "volume" and info["loader"] == "weightcache"
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_seed_client_reports_and_saves_test_output_png(jaguar: Deployed, serve, tmp_path: Path) -> None:
    url = serve(in_container.by_first_segment(jaguar.warm))
    script = tmp_path / "client" / "test_generate.py"
    script.parent.mkdir()
    shutil.copy(test_generate.__file__, script)

    first = run_client(script, ["--url", url, "--size", "16"], tmp_path)
    second = run_client(script, ["--size", "16"], tmp_path)

    assert first.returncode == 0, first.stderr
    assert (script.parent / ".api_url").read_text().strip() == url
    assert "model: shuttleai/shuttle-jaguar (8B, bfloat16, diffusers)" in first.stdout
    assert "loaded from the volume: yes" in first.stdout
    assert "generation time: " in first.stdout
    assert second.returncode == 0, second.stderr
    assert Image.open(tmp_path / "test_output.png").size == (16, 16)


def test_reload_model_refetches_and_a_failed_reload_keeps_the_old_model_serving(jaguar: Deployed) -> None:
    # Last of the container's tests: it changes the model the container serves. A reload after a
    # restore also reloads the Volume, which Modal refuses while a file of it is open.
    warm, hub = jaguar.warm, jaguar.hub
    config = jaguar.weights / "scheduler/scheduler_config.json"
    hub.commit(REPO, {"scheduler/scheduler_config.json": config.read_bytes() + b"\n"})

    reloaded = warm.request("POST", "/", endpoint="reload_model")
    path_after_reload = warm.request("GET", "/", endpoint="info").json()["volume_path"]
    hub.commit(REPO, {"transformer/config.json": b"{not json"})
    broken = warm.request("POST", "/", endpoint="reload_model")

    assert reloaded.status_code == 200 and reloaded.json()["status"] == "success", reloaded.text
    assert path_after_reload != jaguar.cold_info["volume_path"]
    assert broken.status_code == 500
    assert broken.json()["detail"].startswith("reload failed, the loaded model keeps serving: ")
    assert warm.request("GET", "/", endpoint="info").json()["volume_path"] == path_after_reload
    assert (
        warm.request("GET", "/", endpoint="generate_api", params={"prompt": "cat", **SMALL}).status_code
        == 200
    )


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
