"""fashion_crop's HTTP API (FastAPI): ``GET /`` health and model info, ``POST /crop``.

``create_app`` takes a loaded :class:`FashionCropper` and the :class:`Weights` it was loaded
from, so the same app runs under Modal's ``@modal.asgi_app()``, uvicorn, or a test client.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel

from weightcache import WeightCache

from .pipeline import DetectedItem, FashionCropper, MaskRules
from .weights import LINK_DIR, Placement, Weights, ensure_weights


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; over these the API answers 4xx instead of trying."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_categories: int = 20
    max_category_chars: int = 40


class WeightsInfo(BaseModel):
    """Where the weights came from at start-up, which versions, how long it took, and which loader
    read each model (``weightcache`` or ``library``)."""

    origin: str
    versions: dict[str, str]
    weights_seconds: float
    load_seconds: float
    loaders: dict[str, str]


class Health(BaseModel):
    """``GET /``: the service is up; its device and weights."""

    status: str
    device: str
    weights: WeightsInfo


class CropItem(BaseModel):
    """One item cut out: matched category, score, box (x0, y0, x1, y1) and an RGBA PNG, base64."""

    label: str
    score: float
    box: list[int]
    png_base64: str


class CropResult(BaseModel):
    """``POST /crop``: the items found, the input's size, and the time spent on the models."""

    items: list[CropItem]
    width: int
    height: int
    seconds: float


def build_app(
    cache: WeightCache,
    placements: list[Placement],
    *,
    link_to: str = LINK_DIR,
    device: str | None = None,
    limits: Limits | None = None,
    rules: MaskRules | None = None,
) -> FastAPI:
    """What a container does at start: ensure the weights, load both models, build the app."""
    weights = ensure_weights(cache, placements, link_to)
    started = time.perf_counter()
    cropper = FashionCropper.load(weights.detector_dir, weights.segmenter_dir, device)
    load_seconds = time.perf_counter() - started
    return create_app(cropper, weights, load_seconds=load_seconds, limits=limits, rules=rules)


def create_app(
    cropper: FashionCropper,
    weights: Weights,
    *,
    load_seconds: float,
    limits: Limits | None = None,
    rules: MaskRules | None = None,
) -> FastAPI:
    """The FastAPI app serving ``cropper``; ``rules`` say which masks become items."""
    limits = limits or Limits()
    app = FastAPI(title="fashion-crop-api")
    health = Health(
        status="ok",
        device=cropper.device,
        weights=WeightsInfo(
            origin=weights.origin,
            versions=weights.versions,
            weights_seconds=round(weights.seconds, 3),
            load_seconds=round(load_seconds, 3),
            loaders=cropper.loaders,
        ),
    )

    @app.get("/")
    def get_health() -> Health:
        return health

    @app.post("/crop")
    def crop(
        image: Annotated[UploadFile, File(description="a photo (PNG, JPEG, WebP...)")],
        categories: Annotated[
            list[str] | None, Form(description="clothing categories, repeated or comma-separated")
        ] = None,
        box_threshold: Annotated[float, Form(ge=0.0, le=1.0)] = 0.35,
        max_items: Annotated[int, Form(ge=1, le=50)] = 10,
    ) -> CropResult:
        wanted = parse_categories(categories or [], limits)
        picture = read_image(image, limits)
        started = time.perf_counter()
        items = cropper.crop(picture, wanted, box_threshold=box_threshold, max_items=max_items, rules=rules)
        return CropResult(
            items=[_crop_item(item) for item in items],
            width=picture.width,
            height=picture.height,
            seconds=round(time.perf_counter() - started, 3),
        )

    return app


def parse_categories(values: list[str], limits: Limits) -> list[str]:
    """The categories asked for, from repeated and/or comma-separated form fields, or a 400."""
    categories = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not categories:
        raise HTTPException(400, "give at least one clothing category, e.g. categories=shirt,jeans")
    if len(categories) > limits.max_categories:
        raise HTTPException(400, f"ask for at most {limits.max_categories} categories at once")
    if any(
        len(category) > limits.max_category_chars or not any(c.isalnum() for c in category)
        for category in categories
    ):
        raise HTTPException(
            400,
            f"each category must be a word or short phrase of at most {limits.max_category_chars} characters",
        )
    return categories


def read_image(upload: UploadFile, limits: Limits) -> Image.Image:
    """Decode the upload, refusing (4xx) what is too big or not an image before decoding any pixel."""
    return decode_image(upload.file.read(limits.max_upload_bytes + 1), limits)


def decode_image(data: bytes, limits: Limits) -> Image.Image:
    """Decode ``data``, refusing (4xx) what is too big or not an image before decoding any pixel."""
    if len(data) > limits.max_upload_bytes:
        raise HTTPException(
            413, f"the upload is over {limits.max_upload_bytes // (1024 * 1024)} MiB; send a smaller image"
        )
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise HTTPException(415, "the upload is not an image; send a PNG, JPEG or WebP") from None
    except Image.DecompressionBombError:
        raise HTTPException(
            413, f"the image has too many pixels; the limit is {limits.max_pixels:,}"
        ) from None
    _check_pixels(image.size, limits)
    try:
        image.load()
    except OSError:
        raise HTTPException(400, "the image is damaged or truncated and could not be decoded") from None
    return ImageOps.exif_transpose(image)  # phone photos: boxes must match the picture as people see it


def _check_pixels(size: tuple[int, int], limits: Limits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise HTTPException(
            413,
            f"the image is {width}x{height} pixels, over the limit of {limits.max_pixels:,}; scale it down",
        )


def _crop_item(item: DetectedItem) -> CropItem:
    buffer = io.BytesIO()
    item.cutout.save(buffer, format="PNG")
    return CropItem(
        label=item.label,
        score=round(item.score, 4),
        box=list(item.box),
        png_base64=base64.b64encode(buffer.getvalue()).decode("ascii"),
    )
