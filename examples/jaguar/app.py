"""Modal wiring for shuttle-jaguar: image, Volume, GPU class, and the web endpoints it serves.

Deploy from the repository root (``examples`` and ``weightcache`` must be importable there)::

    modal deploy examples/jaguar/app.py

The first container fetches the model (about 34 GB) from the Hugging Face Hub onto the Volume;
later ones find it there. Pre-populate the Volume from your machine with ``weightcache push``
(see README.md) so that no container ever waits for the download. Only Modal lives here; the
model code (``pipeline.py``) and the HTTP APIs (``server.py``, ``seed_api.py``) are plain Python.

Two interfaces, one container pool: the seed app's four endpoints (``generate-api``,
``batch-api``, ``info``, ``reload-model``, each at its own URL) and the richer API (``web``).

``EXAMPLES_WEIGHTS_LOADER=library`` at deploy time loads the transformer with diffusers' own
loader instead of weightcache's, to compare (``../loading.py``); ``EXAMPLES_MEMORY_SNAPSHOT=1``
turns on Modal's memory snapshots (``../snapshot.py``).

Modal imports this file on the deploying machine and again in every container, where it is
``/root/app.py`` beside the ``examples`` and ``weightcache`` packages: what reads the checkout
runs only under ``modal.is_local()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import modal

from examples.loading import LOADER_ENV, chosen_loader
from examples.snapshot import MEMORY_SNAPSHOT_ENV, memory_snapshot_enabled

APP_NAME = "shuttle-jaguar"
VOLUME_NAME = "jaguar-model-weights"
CACHE_MOUNT = "/cache"
GPU = "L40S"  # 48 GB: the bf16 pipeline (transformer + T5-XXL + CLIP + VAE) needs about 34 GB
# The seed's keep_warm options, in Modal 1.x terms; both off by default. MIN_CONTAINERS = 1 keeps one
# container running at all times (no cold starts; billed while idle). SCALEDOWN_WINDOW keeps an idle
# container this many seconds before it stops (Modal's default is 60).
MIN_CONTAINERS = 0
SCALEDOWN_WINDOW = 60
# Per request: reload-model re-fetches all 34 GB (about 6 min at 100 MB/s) and loads it again.
TIMEOUT = 1800

try:
    LOADER = chosen_loader()  # weightcache (default) or library: which reads the transformer (../loading.py)
    MEMORY_SNAPSHOT = memory_snapshot_enabled()
except ValueError as exc:
    raise SystemExit(str(exc)) from None

image = modal.Image.debian_slim(python_version="3.11")
if modal.is_local():  # in the container this file is /root/app.py: there is no checkout around it
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    image = image.pip_install_from_pyproject(str(pyproject), optional_dependencies=["examples"])
image = image.env(  # read at deploy time; the container agrees
    {LOADER_ENV: LOADER, MEMORY_SNAPSHOT_ENV: "1" if MEMORY_SNAPSHOT else "0"}
).add_local_python_source("weightcache", "examples")
app = modal.App(APP_NAME, image=image)
volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


@app.cls(
    gpu=GPU,
    volumes={CACHE_MOUNT: volume},
    timeout=TIMEOUT,
    startup_timeout=1800,  # a first start with an empty Volume downloads 34 GB
    min_containers=MIN_CONTAINERS,
    scaledown_window=SCALEDOWN_WINDOW,
    enable_memory_snapshot=MEMORY_SNAPSHOT,
)
@modal.concurrent(max_inputs=4)  # info answers while an image is generated (generation is serialised)
class ShuttleJaguarModel:
    """One container: the model ensured on the Volume and loaded at start, then served."""

    # With snapshots, prepare runs before the snapshot and start after each restore; without, Modal
    # runs both at start, in the order they are defined here (snap=True needs snapshots enabled).
    @modal.enter(snap=MEMORY_SNAPSHOT)
    def prepare(self) -> None:
        """Ensure the weights (a hit on the Volume after the first start); with memory snapshots,
        also load the pipeline on the CPU, so that the snapshot holds it.

        Without snapshots the files are read into memory in the background, the transformer
        first, while torch and diffusers import, so the load in :meth:`start` finds them there.
        """
        from examples.jaguar.weights import ensure_weights, jaguar_source
        from examples.loading import start_prefetch
        from weightcache import ModalVolumeStore, WeightCache

        self.cache, self.source = WeightCache(ModalVolumeStore(volume, CACHE_MOUNT)), jaguar_source()
        self.ensured = ensure_weights(self.cache, self.source)
        if not MEMORY_SNAPSHOT:
            start_prefetch([self.ensured.entry.path / "transformer", self.ensured.entry])
            return
        from examples.jaguar.pipeline import JaguarModel
        from examples.snapshot import check_volume_released

        # No GPU is visible before a snapshot, and torch must not look for one yet: load on the CPU.
        self.model = JaguarModel(self.cache, self.source, device="cpu")
        self.model.load(self.ensured)
        self.cache.release(self.ensured.entry)  # the weights are in memory: the snapshot holds no file
        check_volume_released(CACHE_MOUNT)

    @modal.enter(snap=False)
    def start(self) -> None:
        """Load the pipeline onto the GPU (from the snapshot's CPU copy, or from the Volume)."""
        from examples.jaguar.pipeline import JaguarModel  # imports torch and diffusers
        from examples.jaguar.seed_api import SeedAPI
        from examples.jaguar.server import create_app

        if MEMORY_SNAPSHOT:
            self.model.to_device()  # the GPU, now that the container has one
        else:
            self.model = JaguarModel(self.cache, self.source)
            self.model.load(self.ensured)
        self.seed = SeedAPI(self.model)
        self.web_app = create_app(self.model)

    @modal.asgi_app()
    def web(self):
        """The richer API: ``POST /generate``, ``GET /info``, ``POST /reload-model``."""
        return self.web_app

    # The seed's interface, each at https://WORKSPACE--shuttle-jaguar-shuttlejaguarmodel-<name>.modal.run

    @modal.fastapi_endpoint(method="GET")
    def generate_api(
        self,
        prompt: str,
        height: int = 1024,
        width: int = 1024,
        guidance_scale: float = 3.5,
        steps: int = 4,
        max_seq_length: int = 256,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """One image: ``{"image": base64 PNG, "parameters": {...}, "generation_time": s}``."""
        return self.seed.generate(prompt, height, width, guidance_scale, steps, max_seq_length, seed)

    @modal.fastapi_endpoint(method="POST")
    def batch_api(self, request: dict) -> dict[str, Any]:
        """One image per prompt of ``{"prompts": [...], ..., "base_seed": n}``."""
        return self.seed.batch(request)

    @modal.fastapi_endpoint(method="GET")
    def info(self) -> dict[str, Any]:
        """The model served and whether it came from the Volume."""
        return self.seed.info()

    @modal.fastapi_endpoint(method="POST")
    def reload_model(self) -> dict[str, Any]:
        """Re-fetch the weights and reload the pipeline; the old one serves until the new is ready."""
        return self.seed.reload()
