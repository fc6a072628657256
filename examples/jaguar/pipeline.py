"""shuttle-jaguar through diffusers' ``FluxPipeline``, its weights kept by weightcache.

Plain Python that runs anywhere torch does: no Modal, no HTTP. ``JaguarModel`` fetches the
weights with ``cache.ensure(source)`` (a hit on the volume costs a manifest read and a stat per
file), loads the pipeline in bf16, generates images, and can re-fetch and reload on demand.
"""

from __future__ import annotations

import gc
import random
import threading
import time
from dataclasses import asdict, dataclass

import torch
from diffusers import FluxPipeline
from PIL import Image

from weightcache import Source, WeightCache

ORIGIN_BY_SCHEME = {"hf": "huggingface", "dir": "image"}
MAX_SEQUENCE_LENGTH = 256  # T5 prompt tokens, as the seed app used


@dataclass(frozen=True)
class GenerateParams:
    """One image to make. ``seed=None`` picks a random seed (reported back, to reproduce it)."""

    prompt: str
    steps: int = 4
    width: int = 1024
    height: int = 1024
    guidance: float = 3.5
    seed: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What is loaded: ``source`` is ``"volume"`` when the weights were already cached there,
    else where they were fetched from (``"huggingface"``); ``revision`` is the version cached."""

    model: str
    source: str
    revision: str
    weights_seconds: float
    load_seconds: float
    device: str
    dtype: str

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


class JaguarModel:
    """The pipeline and where its weights came from; thread-safe for generate and reload."""

    def __init__(
        self,
        cache: WeightCache,
        source: Source,
        *,
        device: str | None = None,
        dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        self.cache = cache
        self.source = source
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype
        self._lock = threading.Lock()
        self._pipeline: FluxPipeline | None = None
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo:
        """What is loaded now (call :meth:`load` first)."""
        if self._info is None:
            raise RuntimeError("the model is not loaded yet; call load() first")
        return self._info

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this (16 for the real model)."""
        with self._lock:
            return self._loaded().vae_scale_factor * 2

    def load(self, *, force: bool = False) -> ModelInfo:
        """Ensure the weights are cached (re-fetching them with ``force``), then (re)load the pipeline.

        The fetch runs before the old pipeline is dropped, so a failed re-fetch leaves the
        service as it was, and generation goes on while new weights download.
        """
        started = time.perf_counter()
        entry = self.cache.ensure(self.source, force=force, refresh=force)
        fetched = time.perf_counter()
        with self._lock:
            self._release()
            pipeline = FluxPipeline.from_pretrained(entry.path, dtype=self.dtype, local_files_only=True)
            self._pipeline = pipeline.to(self.device)
            self._info = ModelInfo(
                model=self.source.uri,
                source="volume"
                if entry.hit
                else ORIGIN_BY_SCHEME.get(self.source.scheme, self.source.scheme),
                revision=entry.version,
                weights_seconds=round(fetched - started, 3),
                load_seconds=round(time.perf_counter() - fetched, 3),
                device=self.device,
                dtype=str(self.dtype).removeprefix("torch."),
            )
            return self._info

    def generate(self, params: GenerateParams) -> tuple[Image.Image, int]:
        """The image for ``params`` and the seed used."""
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        with self._lock:
            image = self._loaded()(
                params.prompt,
                num_inference_steps=params.steps,
                width=params.width,
                height=params.height,
                guidance_scale=params.guidance,
                max_sequence_length=MAX_SEQUENCE_LENGTH,
                generator=torch.Generator(self.device).manual_seed(seed),
            ).images[0]
        return image, seed

    def _loaded(self) -> FluxPipeline:
        if self._pipeline is None:
            raise RuntimeError("the model is not loaded; call load() first")
        return self._pipeline

    def _release(self) -> None:
        # Free the old pipeline before loading the new one: two copies do not fit on one GPU.
        self._pipeline = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
