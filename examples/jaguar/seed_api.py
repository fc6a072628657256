"""The seed app's interface: ``generate-api``, ``batch-api``, ``info`` and ``reload-model``, unchanged.

The seed "jaguar-diffusers" served four web endpoints of its class ``ShuttleJaguarModel``, each
at its own URL (``https://WORKSPACE--shuttle-jaguar-shuttlejaguarmodel-<name>.modal.run``).
``app.py`` declares them as ``@modal.fastapi_endpoint`` methods that call :class:`SeedAPI`, so
clients written for the seed keep working; the richer API (``server.py``) is served beside it.
:func:`create_seed_app` serves the same four on one local server, each under ``/<name>``.
"""

from __future__ import annotations

import base64
import io
import random
import time
from typing import Any

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from weightcache import WeightCacheError

from .pipeline import GenerateParams, JaguarModel
from .weights import REPO

#: The seed's defaults (its ``recommended_settings``).
RECOMMENDED_SETTINGS: dict[str, Any] = {
    "height": 1024,
    "width": 1024,
    "guidance_scale": 3.5,
    "steps": 4,
    "max_seq_length": 256,
}
ENDPOINTS = ("generate-api", "batch-api", "info", "reload-model")
MAX_BATCH = 16  # prompts per batch-api request: each image takes seconds on the GPU
MAX_SIDE = 2048
MAX_STEPS = 50
MAX_SEQ_LENGTH = 512  # T5's limit in FluxPipeline


class SeedAPI:
    """The seed's four endpoints over a loaded :class:`JaguarModel`; errors are ``HTTPException``."""

    def __init__(self, model: JaguarModel) -> None:
        self.model = model

    def generate(
        self,
        prompt: str,
        height: int = 1024,
        width: int = 1024,
        guidance_scale: float = 3.5,
        steps: int = 4,
        max_seq_length: int = 256,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """``GET generate-api``: one image, as ``{"image": base64 PNG, "parameters", "generation_time"}``."""
        params = self._params(prompt, height, width, guidance_scale, steps, max_seq_length, seed)
        started = time.perf_counter()
        image, used_seed = self.model.generate(params)
        return {
            "image": _png_base64(image),
            "parameters": _parameters(params, used_seed),
            "generation_time": round(time.perf_counter() - started, 2),
        }

    def batch(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST batch-api``: one image per prompt; prompt ``i`` gets seed ``base_seed + i``."""
        prompts = request.get("prompts")
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise HTTPException(400, "prompts must be a non-empty list of strings")
        if len(prompts) > MAX_BATCH:
            raise HTTPException(400, f"send at most {MAX_BATCH} prompts per batch")
        settings = {key: request.get(key, value) for key, value in RECOMMENDED_SETTINGS.items()}
        base_seed = request.get("base_seed")
        if base_seed is None:
            base_seed = random.randrange(2**31)
        if not isinstance(base_seed, int) or base_seed < 0:
            raise HTTPException(400, "base_seed must be a non-negative integer")
        started, results = time.perf_counter(), []
        for index, prompt in enumerate(prompts):
            params = self._params(prompt, seed=base_seed + index, **settings)
            image_started = time.perf_counter()
            image, used_seed = self.model.generate(params)
            results.append(
                {
                    "prompt": prompt,
                    "image": _png_base64(image),
                    "seed": used_seed,
                    "generation_time": round(time.perf_counter() - image_started, 2),
                }
            )
        return {
            "results": results,
            "parameters": {
                "height": params.height,
                "width": params.width,
                "guidance_scale": params.guidance,
                "num_steps": params.steps,
                "max_seq_length": params.max_sequence_length,
                "base_seed": base_seed,
            },
            "total_generation_time": round(time.perf_counter() - started, 2),
            "images_generated": len(results),
        }

    def info(self) -> dict[str, Any]:
        """``GET info``: the model this container serves now and where its weights came from."""
        loaded = self.model.info
        return {
            "model": REPO,
            "version": loaded.dtype,
            "parameters": "8B",
            "format": "diffusers",
            "capabilities": ["text-to-image"],
            "recommended_settings": dict(RECOMMENDED_SETTINGS),
            "source": "volume" if loaded.source == "volume" else "huggingface",
            "volume_path": loaded.path,
        }

    def reload(self) -> dict[str, Any]:
        """``POST reload-model``: re-fetch the weights and reload; the old model serves until then."""
        try:
            loaded = self.model.load(force=True)
        except Exception as exc:  # whatever failed, the old pipeline is still the one loaded
            status = 503 if isinstance(exc, WeightCacheError) else 500
            raise HTTPException(status, f"reload failed, the loaded model keeps serving: {exc}") from None
        return {"status": "success", "message": "model re-fetched and reloaded", "source": loaded.source}

    def _params(
        self,
        prompt: Any,
        height: Any,
        width: Any,
        guidance_scale: Any,
        steps: Any,
        max_seq_length: Any,
        seed: Any,
    ) -> GenerateParams:
        if not isinstance(prompt, str) or not prompt.strip():
            raise HTTPException(400, "prompt must be a non-empty string")
        multiple = self.model.size_multiple
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or not 0 < value <= MAX_SIDE or value % multiple:
                raise HTTPException(400, f"{name} must be a multiple of {multiple} up to {MAX_SIDE}")
        if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise HTTPException(400, f"steps must be between 1 and {MAX_STEPS}")
        if not isinstance(max_seq_length, int) or not 1 <= max_seq_length <= MAX_SEQ_LENGTH:
            raise HTTPException(400, f"max_seq_length must be between 1 and {MAX_SEQ_LENGTH}")
        if not isinstance(guidance_scale, int | float) or not 0 <= guidance_scale <= 20:
            raise HTTPException(400, "guidance_scale must be between 0 and 20")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise HTTPException(400, "seed must be a non-negative integer")
        return GenerateParams(
            prompt=prompt,
            steps=steps,
            width=width,
            height=height,
            guidance=float(guidance_scale),
            seed=seed,
            max_sequence_length=max_seq_length,
        )


def create_seed_app(api: SeedAPI) -> FastAPI:
    """The four seed endpoints on one local server, each at ``/<name>`` (``test_generate.py`` knows)."""
    app = FastAPI(title="shuttle-jaguar (seed interface)")

    @app.exception_handler(WeightCacheError)
    def weights_unavailable(request: Request, exc: WeightCacheError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    app.add_api_route("/generate-api", api.generate, methods=["GET"])
    app.add_api_route("/info", api.info, methods=["GET"])
    app.add_api_route("/reload-model", api.reload, methods=["POST"])

    @app.post("/batch-api")
    def batch_api(request: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008 (FastAPI's idiom)
        return api.batch(request)

    return app


def _parameters(params: GenerateParams, seed: int) -> dict[str, Any]:
    return {
        "prompt": params.prompt,
        "height": params.height,
        "width": params.width,
        "guidance_scale": params.guidance,
        "num_steps": params.steps,
        "max_seq_length": params.max_sequence_length,
        "seed": seed,
    }


def _png_base64(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
