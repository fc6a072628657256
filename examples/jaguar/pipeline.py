"""shuttle-jaguar through diffusers' ``FluxPipeline``, its weights kept by weightcache.

Plain Python that runs anywhere torch does: no Modal, no HTTP. ``JaguarModel`` fetches the
weights with ``cache.ensure(source)`` (a hit on the volume costs a manifest read and a stat per
file), loads the pipeline in bf16, generates images, and can re-fetch and reload on demand.
The transformer (about 24 of the 34 GB) is read by ``weightcache.torch.load_safetensors``
straight onto the GPU (``examples/loading.py``); diffusers loads the other components.
"""

from __future__ import annotations

import gc
import random
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from diffusers import FluxPipeline, FluxTransformer2DModel
from PIL import Image

from examples.loading import load_diffusers_model
from weightcache import Source, WeightCache

from .weights import EnsuredWeights, ensure_weights

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
    max_sequence_length: int = MAX_SEQUENCE_LENGTH


@dataclass(frozen=True)
class ModelInfo:
    """What is loaded: ``source`` is ``"volume"`` when the weights were already cached there,
    else where they were fetched from (``"huggingface"``); ``revision`` is the version cached and
    ``path`` its folder; ``loader`` is what read the transformer's weights (``"weightcache"`` or
    ``"library"``)."""

    model: str
    source: str
    revision: str
    path: str
    weights_seconds: float
    load_seconds: float
    device: str
    dtype: str
    loader: str

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Loaded:
    # One object, swapped in one assignment: a reader never sees one pipeline with another's info.
    pipeline: FluxPipeline
    info: ModelInfo


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
        self._lock = threading.Lock()  # held while generating and while swapping pipelines
        self._reload_lock = threading.Lock()  # one reload at a time
        self._loaded: _Loaded | None = None

    @property
    def info(self) -> ModelInfo:
        """What is loaded and serving now (call :meth:`load` first)."""
        loaded = self._loaded
        if loaded is None:
            raise RuntimeError("the model is not loaded yet; call load() first")
        return loaded.info

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this (16 for the real model)."""
        return self._current().pipeline.vae_scale_factor * 2

    def load(
        self, ensured: EnsuredWeights | None = None, *, force: bool = False, device: str | None = None
    ) -> ModelInfo:
        """Ensure the weights are cached (re-fetching them with ``force``), then load the pipeline.

        ``ensured`` is the result of an ``ensure_weights`` the caller already ran (the container
        does, to start reading the files before importing torch). ``device`` loads somewhere else
        than the model's device: ``"cpu"`` before a memory snapshot, then :meth:`to_device`.

        When a pipeline is already loaded (a reload), the new one is fetched and loaded while
        the old one keeps serving, and swapped in only once it is ready: if anything fails, the
        old one serves on and the error is raised. With the model on a GPU the new pipeline is
        loaded on the CPU first (two do not fit in 48 GB), then the old one moves to the CPU
        and the new one to the GPU; if that move fails, the old one moves back.
        """
        with self._reload_lock:
            if ensured is None:
                ensured = ensure_weights(self.cache, self.source, force=force)
            target = device or self.device
            staging = target if self._loaded is None else "cpu"
            started = time.perf_counter()
            pipeline, loader = load_pipeline(ensured.entry.path, staging, self.dtype)
            info = self._describe(ensured, loader, target, time.perf_counter() - started)
            self._swap(pipeline, info, target)
            return info

    def to_device(self, device: str | None = None) -> ModelInfo:
        """Move the loaded pipeline to ``device`` and serve it there from now on, e.g. after a memory
        snapshot restored it on the CPU. The default is the GPU when one is visible *now* (none is
        before a snapshot), else the CPU."""
        with self._reload_lock, self._lock:
            loaded = self._current()
            target = self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            started = time.perf_counter()
            loaded.pipeline.to(target)
            seconds = loaded.info.load_seconds + time.perf_counter() - started
            info = replace(loaded.info, device=target, load_seconds=round(seconds, 3))
            self._loaded = _Loaded(loaded.pipeline, info)
            return info

    def generate(self, params: GenerateParams) -> tuple[Image.Image, int]:
        """The image for ``params`` and the seed used."""
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        with self._lock:
            loaded = self._current()
            image = loaded.pipeline(
                params.prompt,
                num_inference_steps=params.steps,
                width=params.width,
                height=params.height,
                guidance_scale=params.guidance,
                max_sequence_length=params.max_sequence_length,
                generator=torch.Generator(loaded.info.device).manual_seed(seed),
            ).images[0]
        return image, seed

    def _current(self) -> _Loaded:
        loaded = self._loaded
        if loaded is None:
            raise RuntimeError("the model is not loaded; call load() first")
        return loaded

    def _describe(self, ensured: EnsuredWeights, loader: str, device: str, seconds: float) -> ModelInfo:
        entry = ensured.entry
        return ModelInfo(
            model=self.source.uri,
            source="volume" if entry.hit else ORIGIN_BY_SCHEME.get(self.source.scheme, self.source.scheme),
            revision=entry.version,
            path=str(entry.path),
            weights_seconds=round(ensured.seconds, 3),
            load_seconds=round(seconds, 3),
            device=device,
            dtype=str(self.dtype).removeprefix("torch."),
            loader=loader,
        )

    def _swap(self, pipeline: FluxPipeline, info: ModelInfo, device: str) -> None:
        """Serve ``pipeline`` instead of the old one, moving it to ``device`` first."""
        with self._lock:
            old = self._loaded
            if old is not None and torch.device(device).type != "cpu":
                old.pipeline.to("cpu")  # make room on the GPU
                try:
                    pipeline.to(device)
                except BaseException:
                    del pipeline
                    _free_memory()
                    old.pipeline.to(old.info.device)
                    raise
            else:
                pipeline.to(device)
            self._loaded = _Loaded(pipeline, info)
        del old
        _free_memory()


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_pipeline(path: Path, device: str, dtype: torch.dtype) -> tuple[FluxPipeline, str]:
    """The pipeline at ``path`` on ``device`` in ``dtype``, and what loaded its transformer.

    ``weightcache``: the transformer was read onto ``device`` by ``load_safetensors`` and handed
    to ``FluxPipeline.from_pretrained``, which loads the rest. ``library``: diffusers loaded it all
    (chosen with ``EXAMPLES_WEIGHTS_LOADER=library``, or the layout was unexpected; logged).
    """
    transformer = load_diffusers_model(FluxTransformer2DModel, path / "transformer", device, dtype)
    if transformer is None:
        pipeline = FluxPipeline.from_pretrained(path, dtype=dtype, local_files_only=True)
        return pipeline.to(device), "library"
    pipeline = FluxPipeline.from_pretrained(path, transformer=transformer, dtype=dtype, local_files_only=True)
    return pipeline.to(device), "weightcache"
