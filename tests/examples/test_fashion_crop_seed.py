"""fashion_crop's seed interface: app.py's ``fastapi_app`` served by its Modal container (the app
run as ``modal deploy`` would run it: ``in_container``), the crop selection rules, safe
``imageUrl`` fetching, and where crops are stored."""

from __future__ import annotations

import base64
import contextlib
import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from examples.fashion_crop import client
from examples.fashion_crop.image_fetch import FetchLimits, ImageFetchError, fetch_image, public_address
from examples.fashion_crop.pipeline import FashionCropper, MaskRules
from examples.fashion_crop.seed_api import SeedOptions, create_seed_app
from examples.fashion_crop.storage import S3Uploader, data_url, uploader_from_env
from weightcache.testing.modal_container import ContainerStartError, ModalContainer

from . import in_container
from .extras import DEVICE
from .test_fashion_crop import ANY_MASK

APP = "examples/fashion_crop/app.py"
OUTFIT_PNG = client.png_bytes(client.example_outfit())
OUTFIT_B64 = base64.b64encode(OUTFIT_PNG).decode()


@pytest.fixture(scope="module")
def cropper(baked_weights: Path) -> FashionCropper:
    from examples.fashion_crop.weights import DETECTOR, SEGMENTER

    return FashionCropper.load(baked_weights / DETECTOR.folder, baked_weights / SEGMENTER.folder, DEVICE)


def seed_client(cropper: FashionCropper | None, **options: Any) -> TestClient:
    return TestClient(create_seed_app(cropper, SeedOptions(rules=ANY_MASK, **options)))


def jpeg_of(url: str) -> Image.Image:
    assert url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))
    assert image.format == "JPEG"
    return image


# --- app.py in its Modal container ------------------------------------------------------------


@dataclass
class Deployed:
    """The cold container (stopped) and the warm one the tests use, both on one Volume."""

    cold: ModalContainer
    cold_health: dict[str, Any]
    warm: ModalContainer


@pytest.fixture(scope="module")
def deployed(baked_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """app.py deployed the image way (``prepare_weights.py``'s folder, here the tiny models' one):
    a cold container with snapshots off, stopped; then a warm one with snapshots on."""
    state = tmp_path_factory.mktemp("fashion-modal")
    local_weights = {"FASHION_CROP_WEIGHTS": "image", "FASHION_CROP_WEIGHTS_DIR": str(baked_weights)}
    with in_container.container(APP, "FashionCrop", state, snapshot=False, env=local_weights) as cold:
        cold_health = cold.request("GET", "/", endpoint="web").json()
    warm = in_container.container(APP, "FashionCrop", state, snapshot=True, env=local_weights).start()
    try:
        yield Deployed(cold, cold_health, warm)
    finally:
        warm.stop()


def test_a_cold_container_promotes_the_image_weights_and_the_next_finds_them_on_the_volume(
    deployed: Deployed,
) -> None:
    warm_health = deployed.warm.request("GET", "/", endpoint="web").json()

    assert "📥 Models not found in volume cache. Downloading (first time only)..." in deployed.cold.logs()
    assert "✅ Models found in volume cache" in deployed.warm.logs()
    assert "Models not found" not in deployed.warm.logs()
    assert deployed.cold_health["weights"]["origin"] == "image"
    assert warm_health["status"] == "ok" and warm_health["weights"]["origin"] == "volume"
    assert warm_health["weights"]["versions"] == deployed.cold_health["weights"]["versions"]


def test_enter_methods_run_in_modals_order_and_the_snapshot_holds_no_volume_file(deployed: Deployed) -> None:
    assert deployed.cold.entered == {"pre_snapshot": [], "post_snapshot": ["prepare", "start"]}
    assert deployed.warm.entered == {"pre_snapshot": ["prepare"], "post_snapshot": ["start"]}
    assert deployed.warm.open_at_snapshot == []
    assert deployed.warm.endpoints == ["fastapi_app", "web"]


def test_the_seed_app_answers_in_the_seeds_shape(deployed: Deployed) -> None:
    seed = partial(deployed.warm.request, endpoint="fastapi_app")

    status = seed("GET", "/")
    preflight = seed(
        "OPTIONS",
        "/crop",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    crop = seed("POST", "/crop", json_body={"imageBase64": OUTFIT_B64, "categories": ["shirt"]})

    assert status.json() == {"status": "online", "cropper_available": True, "endpoint": "/crop"}
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert crop.status_code in (200, 404), crop.text  # the tiny models' masks are noise
    assert set(crop.json()) <= {"croppedImageUrl", "detail"}


def test_deploying_without_the_prepared_weights_says_what_to_run(tmp_path: Path) -> None:
    missing = tmp_path / "data" / "weights"
    container = in_container.container(
        APP, "FashionCrop", tmp_path, snapshot=False, env={"FASHION_CROP_WEIGHTS_DIR": str(missing)}
    )

    with pytest.raises(ContainerStartError) as refused:
        container.start()

    assert refused.value.phase == "importing the app where it is deployed"
    assert f"{missing} does not exist: run python -m examples.fashion_crop.prepare_weights first" in (
        refused.value.details
    )


# --- the seed's POST /crop --------------------------------------------------------------------


def test_one_category_answers_one_jpeg_data_url_of_the_item(cropper: FashionCropper) -> None:
    answer = seed_client(cropper).post("/crop", json={"imageBase64": OUTFIT_B64, "categories": ["shirt"]})

    assert answer.status_code == 200, answer.text
    assert list(answer.json()) == ["croppedImageUrl"]
    crop = jpeg_of(answer.json()["croppedImageUrl"])
    assert crop.mode == "RGB" and 0 < crop.width <= 384 and 0 < crop.height <= 512


def test_several_categories_answer_a_list_of_up_to_count_urls(cropper: FashionCropper) -> None:
    service = seed_client(cropper)
    data_url_image = "data:image/png;base64," + OUTFIT_B64

    by_default = service.post("/crop", json={"imageBase64": data_url_image, "categories": ["shirt", "jeans"]})
    two_of_one = service.post("/crop", json={"imageBase64": OUTFIT_B64, "categories": ["shoes"], "count": 2})

    assert by_default.status_code == 200, by_default.text
    assert 1 <= len(by_default.json()["croppedImageUrls"]) <= 2
    assert 1 <= len(two_of_one.json()["croppedImageUrls"]) <= 2
    assert all(jpeg_of(url) for url in by_default.json()["croppedImageUrls"])


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"categories": ["shirt"]}, 400, "give the image as exactly one of imageUrl or imageBase64"),
        ({"imageBase64": "%%%", "categories": ["shirt"]}, 400, "imageBase64 is not valid base64"),
        ({"imageBase64": OUTFIT_B64, "categories": []}, 400, "give at least one clothing category"),
        ({"imageUrl": "file:///etc/passwd", "categories": ["shirt"]}, 400, "imageUrl must be an http"),
    ],
    ids=["no-image", "bad-base64", "no-categories", "file-url"],
)
def test_bad_seed_requests_get_a_4xx_in_one_sentence(
    cropper: FashionCropper, body: dict, status: int, says: str
) -> None:
    answer = seed_client(cropper).post("/crop", json=body)

    assert answer.status_code == status
    assert answer.json()["detail"].startswith(says)


def test_an_image_url_on_this_machine_is_refused_without_a_request(cropper: FashionCropper, serve) -> None:
    requests = []
    url = serve(_recording_png_server(requests))

    refused = seed_client(cropper).post(
        "/crop", json={"imageUrl": f"{url}/outfit.png", "categories": ["shirt"]}
    )
    allowed = seed_client(cropper, fetch=partial(fetch_image, allowed=lambda address: True)).post(
        "/crop", json={"imageUrl": f"{url}/outfit.png", "categories": ["shirt"]}
    )

    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("imageUrl's host 127.0.0.1 is not a public address")
    assert requests == ["/outfit.png"]  # only the request allowed on purpose
    assert allowed.status_code == 200, allowed.text


def test_without_models_the_status_says_so_and_crop_answers_503() -> None:
    service = seed_client(None)

    assert service.get("/").json()["cropper_available"] is False
    assert service.post("/crop", json={"imageBase64": OUTFIT_B64, "categories": ["shirt"]}).status_code == 503


def test_the_prompt_hook_gets_the_categories_and_a_failing_hook_falls_back(cropper: FashionCropper) -> None:
    asked = []

    def expand(categories: list[str]) -> list[str]:
        asked.append(categories)
        return [f"{category} worn by a person" for category in categories]

    def broken(categories: list[str]) -> list[str]:
        raise TimeoutError("the LLM did not answer")

    body = {"imageBase64": OUTFIT_B64, "categories": ["shirt"]}
    expanded = seed_client(cropper, expand=expand).post("/crop", json=body)
    fallback = seed_client(cropper, expand=broken).post("/crop", json=body)

    assert asked == [["shirt"]]
    assert expanded.status_code in (200, 404) and fallback.status_code == 200


def test_crops_go_to_the_bucket_when_an_uploader_is_set(cropper: FashionCropper) -> None:
    bucket = FakeS3()
    upload = S3Uploader(bucket, "crops-bucket", public_url="https://cdn.example/")

    answer = seed_client(cropper, upload=upload).post(
        "/crop", json={"imageBase64": OUTFIT_B64, "categories": ["shirt"]}
    )

    url = answer.json()["croppedImageUrl"]
    ((key, stored),) = bucket.objects.items()
    assert url == f"https://cdn.example/{key}" and key.startswith("crops/") and key.endswith(".jpg")
    assert Image.open(io.BytesIO(stored)).format == "JPEG"


def test_without_a_bucket_crops_are_data_urls_and_a_presigned_url_is_used_without_a_public_one() -> None:
    bucket = FakeS3()

    assert uploader_from_env({}) is data_url
    assert S3Uploader(bucket, "b")(b"jpeg") == "https://signed.example/b/" + next(iter(bucket.objects))


class FakeS3:
    """The two calls of boto3's S3 client the uploader makes."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:
        assert ContentType == "image/jpeg"
        self.objects[Key] = Body

    def generate_presigned_url(self, operation: str, *, Params: dict, ExpiresIn: int) -> str:
        return f"https://signed.example/{Params['Bucket']}/{Params['Key']}"


# --- which of SAM-2's masks become items ------------------------------------------------------


class StandInSegmenter:
    """SAM-2's interface with chosen outputs: per box three 8x8 mask logits and their scores."""

    def __init__(self, masks: torch.Tensor, scores: torch.Tensor) -> None:
        self.masks, self.scores, self.calls = masks, scores, []
        self.config = SimpleNamespace(prompt_encoder_config=SimpleNamespace(image_size=32))

    def get_image_embeddings(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        return [pixel_values]

    def __call__(self, *, image_embeddings: Any, input_boxes: torch.Tensor, multimask_output: bool) -> Any:
        assert multimask_output
        start = sum(self.calls)
        count = input_boxes.shape[1]
        self.calls.append(count)
        return SimpleNamespace(
            pred_masks=self.masks[None, start : start + count],
            iou_scores=self.scores[None, start : start + count],
        )


def crop_with(segmenter: StandInSegmenter, boxes: int, rules: MaskRules | None = None) -> list:
    cropper = FashionCropper(None, None, segmenter, "cpu")  # type: ignore[arg-type]
    whole = torch.tensor([[0.0, 0.0, 64.0, 64.0]] * boxes)
    cropper._detect = lambda image, categories, threshold, most: (  # type: ignore[method-assign]
        [f"item{i}" for i in range(boxes)],
        [1.0 - i / 100 for i in range(boxes)],
        whole,
    )
    return cropper.crop(Image.new("RGB", (64, 64)), ["item"], rules=rules)


def test_each_box_gets_the_best_of_three_masks_and_weak_or_tiny_ones_are_dropped() -> None:
    full, empty, corner = torch.full((8, 8), 5.0), torch.full((8, 8), -5.0), torch.full((8, 8), -5.0)
    corner[0, 0] = 5.0  # upsampled, about 1/64 of the image: kept at 0.3 %, dropped at 2 %
    masks = torch.stack(
        [
            torch.stack([empty, full, empty]),  # best is the full mask
            torch.stack([full, empty, empty]),  # best scores low
            torch.stack([empty, empty, empty]),  # nothing masked
            torch.stack([corner, empty, empty]),  # a speck
        ]
    )
    scores = torch.tensor([[0.2, 0.9, 0.1], [0.3, 0.1, 0.1], [0.9, 0.1, 0.1], [0.9, 0.1, 0.1]])

    default = crop_with(StandInSegmenter(masks, scores), 4)
    strict = crop_with(StandInSegmenter(masks, scores), 4, MaskRules(min_area=0.02))

    assert [item.label for item in default] == ["item0", "item3"]
    assert default[0].cutout.getchannel("A").getextrema() == (255, 255)
    assert [item.label for item in strict] == ["item0"]


def test_fifty_boxes_go_through_the_mask_decoder_in_bounded_chunks() -> None:
    masks = torch.full((50, 3, 8, 8), 5.0)
    segmenter = StandInSegmenter(masks, torch.full((50, 3), 0.9))

    items = crop_with(segmenter, 50)

    assert len(items) == 50
    assert segmenter.calls == [16, 16, 16, 2]


# --- fetching imageUrl ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.8",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "100.64.0.1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    import ipaddress

    assert not public_address(ipaddress.ip_address(address))


def test_public_addresses_are_allowed() -> None:
    import ipaddress

    assert all(public_address(ipaddress.ip_address(a)) for a in ("93.184.216.34", "2606:4700::6810:84e5"))


def test_fetch_follows_redirects_and_caps_the_size(serve) -> None:
    url = serve(_recording_png_server([]))
    anywhere = partial(fetch_image, allowed=lambda address: True)

    fetched = anywhere(f"{url}/moved")
    with pytest.raises(ImageFetchError, match="over the limit of 100 bytes") as too_big:
        anywhere(f"{url}/outfit.png", FetchLimits(max_bytes=100))

    assert fetched == OUTFIT_PNG
    assert too_big.value.status == 413


def test_fetch_gives_up_on_a_server_that_never_answers() -> None:
    with _silent_server() as port, pytest.raises(ImageFetchError) as timed_out:
        fetch_image(f"http://127.0.0.1:{port}/", FetchLimits(seconds=0.3), allowed=lambda address: True)

    assert timed_out.value.status == 408


def _recording_png_server(requests: list[str]) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse, Response

    app = FastAPI()

    @app.get("/outfit.png")
    def outfit() -> Response:
        requests.append("/outfit.png")
        return Response(OUTFIT_PNG, media_type="image/png")

    @app.get("/moved")
    def moved() -> RedirectResponse:
        return RedirectResponse("/outfit.png", status_code=302)

    return app


@contextlib.contextmanager
def _silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; yields its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]
