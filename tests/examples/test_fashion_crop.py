"""fashion_crop end to end on tiny models: image dir → weightcache → pipeline → HTTP, as the app runs."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.testclient import TestClient
from PIL import Image

from examples.fashion_crop import client
from examples.fashion_crop.pipeline import MaskRules, cut_out, grounding_prompt
from examples.fashion_crop.server import Limits, build_app
from examples.fashion_crop.weights import DETECTOR, SEGMENTER, hub_placements, image_placements
from weightcache import LocalStore, WeightCache

from .extras import DEVICE
from .tiny_models import tree_files

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PNG = client.png_bytes(client.example_outfit())


# The tiny models' masks are noise: keep every one, so that the plumbing has items to carry.
# Which masks are dropped is tested with a stand-in segmenter in test_fashion_crop_seed.py.
ANY_MASK = MaskRules(min_score=0.0, min_area=0.0)


def start_service(store: Path, baked: Path, link_to: Path, limits: Limits | None = None) -> TestClient:
    """Start as the Modal container does, on a local store."""
    cache = WeightCache(LocalStore(store))
    placements = image_placements(str(baked))
    return TestClient(
        build_app(cache, placements, link_to=str(link_to), device=DEVICE, limits=limits, rules=ANY_MASK)
    )


@pytest.fixture(scope="module")
def service(baked_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    root = tmp_path_factory.mktemp("container")
    return start_service(root / "volume", baked_weights, root / "root/data/weights")


def test_first_container_promotes_baked_weights_and_later_ones_use_the_volume(
    baked_weights: Path, tmp_path: Path
) -> None:
    first = start_service(tmp_path / "volume", baked_weights, tmp_path / "c1/weights").get("/").json()
    later = start_service(tmp_path / "volume", baked_weights, tmp_path / "c2/weights").get("/").json()

    assert first["status"] == "ok"
    assert first["weights"]["origin"] == "image"
    assert later["weights"]["origin"] == "volume"
    assert later["weights"]["loaders"] == {"detector": "weightcache", "segmenter": "weightcache"}
    assert later["weights"]["versions"] == first["weights"]["versions"]
    assert list(first["weights"]["versions"]) == [f"dir://{baked_weights}"]
    linked = tmp_path / "c2/weights/sam2.1-hiera-large/model.safetensors"
    assert linked.is_symlink()
    assert linked.resolve().is_relative_to((tmp_path / "volume").resolve())


def test_crop_returns_each_item_cut_out_with_a_transparent_background(service: TestClient) -> None:
    response = service.post(
        "/crop",
        files={"image": ("outfit.png", EXAMPLE_PNG, "image/png")},
        data={"categories": ["shirt, jeans", "shoes"], "box_threshold": "0", "max_items": "3"},
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["width"], result["height"]) == client.example_outfit().size
    assert 1 <= len(result["items"]) <= 3
    for item in result["items"]:
        assert item["label"] in {"shirt", "jeans", "shoes"}
        x0, y0, x1, y1 = item["box"]
        assert 0 <= x0 < x1 <= result["width"] and 0 <= y0 < y1 <= result["height"]
        cutout = Image.open(io.BytesIO(base64.b64decode(item["png_base64"])))
        assert cutout.format == "PNG" and cutout.mode == "RGBA"
        assert cutout.size == (x1 - x0, y1 - y0)
        assert set(np.unique(np.asarray(cutout)[..., 3])) <= {0, 255}


def test_cut_out_keeps_the_masked_pixels_and_clears_the_rest() -> None:
    image = Image.new("RGB", (6, 4), (200, 10, 10))
    mask = np.zeros((4, 4), dtype=bool)  # the box's size
    mask[1:3, 1:3] = True

    cutout = np.asarray(cut_out(image, mask, (1, 0, 5, 4)))

    assert cutout.shape == (4, 4, 4)
    assert (cutout[1:3, 1:3] == [200, 10, 10, 255]).all()
    assert (cutout[..., 3].sum()) == 4 * 255


def test_grounding_prompt_marks_where_each_category_is() -> None:
    prompt, spans = grounding_prompt(["Shirt", " blue jeans "])

    assert prompt == "shirt. blue jeans."
    assert [prompt[start:end] for start, end in spans] == ["shirt", "blue jeans"]


@pytest.mark.parametrize(
    ("upload", "data", "status", "says"),
    [
        (b"name,size\nshirt,M\n", {"categories": "shirt"}, 415, "not an image"),
        (EXAMPLE_PNG, {}, 400, "at least one clothing category"),
        (EXAMPLE_PNG, {"categories": " , "}, 400, "at least one clothing category"),
        (EXAMPLE_PNG, {"categories": ",".join(["hat"] * 21)}, 400, "at most 20 categories"),
        (EXAMPLE_PNG[:300], {"categories": "shirt"}, 400, "damaged or truncated"),
    ],
    ids=["not-an-image", "no-categories", "blank-categories", "too-many-categories", "truncated"],
)
def test_bad_requests_get_a_clear_4xx(
    service: TestClient, upload: bytes, data: dict, status: int, says: str
) -> None:
    response = service.post("/crop", files={"image": ("upload", upload)}, data=data)

    assert response.status_code == status
    assert says in response.json()["detail"]


def test_oversized_images_are_refused_before_decoding(baked_weights: Path, tmp_path: Path) -> None:
    small = start_service(
        tmp_path / "volume",
        baked_weights,
        tmp_path / "weights",
        Limits(max_upload_bytes=4096, max_pixels=10_000),
    )
    too_many_bytes = client.png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))
    too_many_pixels = client.png_bytes(Image.new("RGB", (200, 100)))

    by_bytes = small.post("/crop", files={"image": ("big.png", too_many_bytes)}, data={"categories": "shirt"})
    by_pixels = small.post(
        "/crop", files={"image": ("wide.png", too_many_pixels)}, data={"categories": "shirt"}
    )

    assert len(too_many_bytes) > 4096 and len(too_many_pixels) < 4096
    assert by_bytes.status_code == 413 and "send a smaller image" in by_bytes.json()["detail"]
    assert by_pixels.status_code == 413 and "200x100 pixels" in by_pixels.json()["detail"]


def test_client_script_saves_the_cut_outs_from_a_real_http_server(
    service: TestClient, serve, tmp_path: Path
) -> None:
    url = serve(service.app)

    done = subprocess.run(
        [
            sys.executable,
            client.__file__,
            "--url",
            url,
            "--box-threshold",
            "0",
            "--out",
            str(tmp_path / "crops"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "weights from image" in done.stdout
    saved = sorted((tmp_path / "crops").glob("*.png"))
    assert saved and all(Image.open(path).mode == "RGBA" for path in saved)


def test_client_script_reports_a_4xx_in_one_line(service: TestClient, serve, tmp_path: Path) -> None:
    url = serve(service.app)

    done = subprocess.run(
        [sys.executable, client.__file__, "--url", url, "--categories", ","],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1
    assert (
        done.stderr.strip() == "error 400: give at least one clothing category, e.g. categories=shirt,jeans"
    )


def publish_models(hub, baked: Path) -> dict[str, str]:
    """Both tiny models on the fake Hub, beside the original checkpoints the app must not fetch."""
    return {
        model.repo: hub.add_repo(model.repo, {**tree_files(baked / model.folder), checkpoint: b"\0" * 4096})
        for model, checkpoint in (
            (DETECTOR, "groundingdino_swint_ogc.pth"),
            (SEGMENTER, "sam2.1_hiera_large.pt"),
        )
    }


def test_hub_way_fetches_only_the_transformers_files_then_serves_from_the_volume(
    hub, baked_weights: Path, tmp_path: Path
) -> None:
    commits = publish_models(hub, baked_weights)
    cache = WeightCache(LocalStore(tmp_path / "volume"))

    first = TestClient(build_app(cache, hub_placements(hub.url), link_to=str(tmp_path / "c1"), device=DEVICE))
    requests_after_first = hub.count()
    later = TestClient(build_app(cache, hub_placements(hub.url), link_to=str(tmp_path / "c2"), device=DEVICE))

    assert first.get("/").json()["weights"]["origin"] == "huggingface"
    assert later.get("/").json()["weights"]["origin"] == "volume"
    assert hub.count() == requests_after_first  # a warm start asks the Hub nothing
    assert sorted(later.get("/").json()["weights"]["versions"].values()) == sorted(commits.values())
    fetched = sorted(path.name for path in (tmp_path / "c2").rglob("*") if path.is_symlink())
    assert fetched == sorted(
        [*tree_files(baked_weights / DETECTOR.folder), *tree_files(baked_weights / SEGMENTER.folder)]
    )
    crop = later.post("/crop", files={"image": ("o.png", EXAMPLE_PNG)}, data={"categories": "shirt"})
    assert crop.status_code == 200


def test_prepare_weights_fills_the_directory_the_image_bakes_in(
    hub, baked_weights: Path, tmp_path: Path
) -> None:
    publish_models(hub, baked_weights)
    env = {**os.environ, "HF_ENDPOINT": hub.url, "WEIGHTCACHE_HOME": str(tmp_path / "store")}

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.fashion_crop.prepare_weights",
            "--out",
            str(tmp_path / "data/weights"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert f"{DETECTOR.repo} @ " in done.stdout and f"{SEGMENTER.repo} @ " in done.stdout
    assert tree_files(tmp_path / "data/weights") == tree_files(baked_weights)
    service = start_service(tmp_path / "volume", tmp_path / "data/weights", tmp_path / "root/data/weights")
    assert service.get("/").json()["weights"]["origin"] == "image"


def test_a_photo_taken_sideways_is_measured_as_people_see_it(service: TestClient) -> None:
    landscape = client.example_outfit().rotate(90, expand=True)  # stored 512x384, EXIF says turn it back
    exif = Image.Exif()
    exif[0x0112] = 8  # orientation: rotate 90° clockwise to display
    buffer = io.BytesIO()
    landscape.save(buffer, format="JPEG", exif=exif)

    response = service.post(
        "/crop",
        files={"image": ("phone.jpg", buffer.getvalue())},
        data={"categories": "shirt", "box_threshold": "0"},
    )

    assert response.status_code == 200
    assert (response.json()["width"], response.json()["height"]) == (384, 512)


def edge_stub() -> FastAPI:
    """A stand-in for Modal's edge: ``/slow/*`` answers 303 to the result (as after 150 s), and
    ``/broken/crop`` an HTML 502 page."""
    app = FastAPI()
    health = {"status": "ok", "device": "cuda", "weights": {"origin": "volume"}}
    result = {"items": [], "width": 384, "height": 512, "seconds": 0.1}

    @app.get("/slow/")
    def slow_health() -> RedirectResponse:
        return RedirectResponse("/result/health", status_code=303)

    @app.post("/slow/crop")
    def slow_crop() -> RedirectResponse:
        return RedirectResponse("/result/crop", status_code=303)

    @app.get("/result/{name}")
    def answer(name: str) -> dict:
        return health if name == "health" else result

    @app.get("/broken/")
    def broken_health() -> dict:
        return health

    @app.post("/broken/crop")
    def broken_crop() -> HTMLResponse:
        return HTMLResponse("<html>502 Bad Gateway</html>", status_code=502)

    return app


def test_client_script_follows_modals_303_and_reports_a_non_json_error(serve) -> None:
    url = serve(edge_stub())

    slow = subprocess.run(
        [sys.executable, client.__file__, "--url", url + "/slow"], capture_output=True, text=True, timeout=120
    )
    broken = subprocess.run(
        [sys.executable, client.__file__, "--url", url + "/broken"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert slow.returncode == 0, slow.stderr
    assert "0 item(s) in 0.10 s" in slow.stdout
    assert broken.returncode == 1
    assert broken.stderr.strip() == "error 502: <html>502 Bad Gateway</html>"
