"""The seed app's interface, unchanged: ``GET /`` and a JSON ``POST /crop`` answering crop URLs.

The seed "fashion-crop-api" served one ASGI app (``https://WORKSPACE--fashion-crop-api-fastapi-app.modal.run``)
that its browser front-end calls directly, so CORS allows any origin. ``POST /crop`` takes
``{"imageUrl": ... | "imageBase64": ..., "categories": [...], "count": n}`` and answers
``{"croppedImageUrl": url}`` for one crop or ``{"croppedImageUrls": [url, ...]}`` for several.
Each crop is a JPEG of the item's box, white outside the item's mask, as a ``data:`` URL or
uploaded (``storage.py``). ``imageUrl`` is fetched by the server within limits and never from a
private address (``image_fetch.py``). The seed expanded the categories into detailed prompts with
a hosted LLM; here that is an optional hook, ``expand``.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from PIL import Image
from pydantic import BaseModel, Field

from .image_fetch import FetchLimits, ImageFetchError, fetch_image
from .pipeline import DetectedItem, FashionCropper, MaskRules
from .server import Limits, decode_image, parse_categories
from .storage import Uploader, data_url

#: Turns categories into detailed detection prompts, one per category (the seed used an LLM).
PromptExpander = Callable[[list[str]], list[str]]
MAX_COUNT = 20
JPEG_QUALITY = 90

logger = logging.getLogger(__name__)


class SeedCropRequest(BaseModel):
    """``POST /crop``: the image (by URL or base64) and the categories; ``count`` defaults to their number."""

    imageUrl: str | None = None  # the seed's field names
    imageBase64: str | None = None
    categories: list[str]
    count: int | None = Field(None, ge=1, le=MAX_COUNT)


@dataclass(frozen=True)
class SeedOptions:
    """How the seed interface fetches, crops and stores: limits, mask rules, uploader, prompt hook."""

    limits: Limits = field(default_factory=Limits)
    fetch_limits: FetchLimits = field(default_factory=FetchLimits)
    box_threshold: float = 0.35
    rules: MaskRules | None = None
    upload: Uploader = data_url
    expand: PromptExpander | None = None
    fetch: Callable[[str, FetchLimits], bytes] = fetch_image


def create_seed_app(cropper: FashionCropper | None, options: SeedOptions | None = None) -> FastAPI:
    """The seed's ASGI app over ``cropper`` (``None``: the models did not load; ``/crop`` answers 503)."""
    options = options or SeedOptions()
    app = FastAPI(title="fashion-crop-api (seed interface)")
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])

    @app.get("/")
    def root() -> dict[str, object]:
        return {"status": "online", "cropper_available": cropper is not None, "endpoint": "/crop"}

    @app.post("/crop")
    def crop(request: SeedCropRequest) -> dict[str, object]:
        if cropper is None:
            raise HTTPException(503, "the models are not loaded; see the service's logs")
        categories = parse_categories(request.categories, options.limits)
        count = request.count or len(categories)
        picture = decode_image(_image_bytes(request, options), options.limits)
        prompts = _expanded(categories, options.expand)
        items = cropper.crop(
            picture,
            prompts,
            box_threshold=options.box_threshold,
            max_items=min(50, 3 * count),
            rules=options.rules,
        )
        chosen = pick(items, prompts, count)
        if not chosen:
            raise HTTPException(404, f"found none of {', '.join(categories)} in the image")
        urls = [options.upload(jpeg_crop(item)) for item in chosen]
        return {"croppedImageUrl": urls[0]} if count == 1 else {"croppedImageUrls": urls}

    return app


def pick(items: list[DetectedItem], categories: list[str], count: int) -> list[DetectedItem]:
    """Up to ``count`` items: the best of each category first, in the categories' order, then the rest."""
    ranked = sorted(items, key=lambda item: -item.score)
    firsts = [next((i for i in ranked if i.label == c), None) for c in categories]
    chosen = [item for item in firsts if item is not None]
    chosen += [item for item in ranked if all(item is not other for other in chosen)]
    return chosen[:count]


def jpeg_crop(item: DetectedItem) -> bytes:
    """The item's cut-out as a JPEG: its box, white where the mask says "not this item"."""
    background = Image.new("RGB", item.cutout.size, (255, 255, 255))
    background.paste(item.cutout, mask=item.cutout.getchannel("A"))
    buffer = io.BytesIO()
    background.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _image_bytes(request: SeedCropRequest, options: SeedOptions) -> bytes:
    if bool(request.imageUrl) == bool(request.imageBase64):
        raise HTTPException(400, "give the image as exactly one of imageUrl or imageBase64")
    if request.imageUrl:
        try:
            return options.fetch(request.imageUrl, options.fetch_limits)
        except ImageFetchError as exc:
            raise HTTPException(exc.status, str(exc)) from None
    encoded = request.imageBase64 or ""
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]  # a data URL: the payload follows the comma
    if len(encoded) > options.limits.max_upload_bytes * 4 // 3 + 4:
        raise HTTPException(413, "imageBase64 is over the size limit; send a smaller image")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "imageBase64 is not valid base64") from None


def _expanded(categories: list[str], expand: PromptExpander | None) -> list[str]:
    """The detection prompts: the hook's, one per category, or the categories when it fails."""
    if expand is None:
        return categories
    try:
        prompts = expand(list(categories))
    except Exception as exc:  # an optional hook: any failure falls back to the categories
        logger.warning("the prompt hook failed, using the categories as they are: %s", exc)
        return categories
    if len(prompts) != len(categories) or not all(isinstance(p, str) and p.strip() for p in prompts):
        logger.warning("the prompt hook did not answer one prompt per category; using the categories")
        return categories
    return prompts
