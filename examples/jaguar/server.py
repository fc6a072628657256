"""jaguar's HTTP API (FastAPI): ``POST /generate`` → PNG, ``GET /info``, ``POST /reload-model``.

``create_app`` takes a loaded :class:`JaguarModel`, so the same app runs under Modal's
``@modal.asgi_app()``, uvicorn, or a test client.
"""

from __future__ import annotations

import io
import time

import torch
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from weightcache import Source, WeightCache, WeightCacheError

from .pipeline import GenerateParams, JaguarModel


class GenerateRequest(BaseModel):
    """The body of ``POST /generate``; defaults are the model's recommended settings."""

    prompt: str = Field(min_length=1, max_length=2000)
    steps: int = Field(4, ge=1, le=50)
    width: int = Field(1024, ge=16, le=2048)
    height: int = Field(1024, ge=16, le=2048)
    guidance: float = Field(3.5, ge=0.0, le=20.0)
    seed: int | None = Field(None, ge=0, lt=2**63)


def build_app(
    cache: WeightCache, source: Source, *, device: str | None = None, dtype: torch.dtype = torch.bfloat16
) -> FastAPI:
    """What a container does at start: ensure the weights, load the pipeline, build the app."""
    model = JaguarModel(cache, source, device=device, dtype=dtype)
    model.load()
    return create_app(model)


def create_app(model: JaguarModel) -> FastAPI:
    """The FastAPI app serving ``model``."""
    app = FastAPI(title="shuttle-jaguar")

    @app.exception_handler(WeightCacheError)
    def weights_unavailable(request: Request, exc: WeightCacheError) -> JSONResponse:
        # A failed re-fetch leaves the loaded model serving; say why in one line.
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.get("/info")
    def info() -> dict[str, object]:
        return model.info.as_dict()

    @app.post("/generate", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def generate(request: GenerateRequest) -> Response:
        multiple = model.size_multiple
        if request.width % multiple or request.height % multiple:
            raise HTTPException(422, f"width and height must be multiples of {multiple}")
        started = time.perf_counter()
        image, seed = model.generate(GenerateParams(**request.model_dump()))
        seconds = time.perf_counter() - started
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        headers = {"X-Generation-Seconds": f"{seconds:.3f}", "X-Seed": str(seed)}
        return Response(buffer.getvalue(), media_type="image/png", headers=headers)

    @app.post("/reload-model")
    def reload_model() -> dict[str, object]:
        return model.load(force=True).as_dict()

    return app
