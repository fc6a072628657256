"""Modal wiring for fashion-crop-api: image, Volume, GPU class, and the two ASGI apps it serves.

Deploy from the repository root (``examples`` and ``weightcache`` must be importable there)::

    python -m examples.fashion_crop.prepare_weights          # once: the weights to bake in
    modal deploy examples/fashion_crop/app.py
    FASHION_CROP_WEIGHTS=hub modal deploy examples/fashion_crop/app.py   # or: fetch from the Hub
    EXAMPLES_WEIGHTS_LOADER=library modal deploy examples/fashion_crop/app.py   # transformers' loader
    EXAMPLES_MEMORY_SNAPSHOT=1 modal deploy examples/fashion_crop/app.py   # Modal's memory snapshots

Two interfaces, one container pool: the seed app's (``fastapi_app``, at the seed's URL
``https://WORKSPACE--fashion-crop-api-fastapi-app.modal.run``) and the richer API (``web``).
``FASHION_CROP_S3_SECRET=NAME`` at deploy time uploads the seed interface's crops to the
S3-compatible bucket that Modal Secret describes (``storage.py``), instead of answering data URLs.

Only Modal lives here; the model code (``pipeline.py``), the weights' sources (``weights.py``)
and the HTTP APIs (``server.py``, ``seed_api.py``) are plain Python, imported in the container
only. Modal imports this file on the deploying machine and again in every container, where it
is ``/root/app.py`` beside the ``examples`` and ``weightcache`` packages: what reads the
checkout or local weights runs only under ``modal.is_local()``.
"""

from __future__ import annotations

import os
from pathlib import Path

import modal

from examples.fashion_crop.weights import BAKED_DIR
from examples.loading import LOADER_ENV, chosen_loader
from examples.snapshot import MEMORY_SNAPSHOT_ENV, memory_snapshot_enabled

APP_NAME = "fashion-crop-api"
VOLUME_NAME = "fashion-model-weights"
CACHE_MOUNT = "/cache"
GPU = "A10G"
# The seed's keep_warm options, in Modal 1.x terms; both off by default. MIN_CONTAINERS = 1 keeps one
# container running at all times (no cold starts; billed while idle). SCALEDOWN_WINDOW keeps an idle
# container this many seconds before it stops (Modal's default is 60).
MIN_CONTAINERS = 0
SCALEDOWN_WINDOW = 60
SEED_LABEL = "fashion-crop-api-fastapi-app"  # the seed's URL: a function fastapi_app in this app
# The seed turned categories into detailed prompts with a hosted LLM. To do the same, set this to a
# function taking the categories and returning one prompt per category (seed_api.PromptExpander).
EXPAND_CATEGORIES = None

# Read at deploy time and carried into the image's environment, so the container agrees.
WEIGHTS_MODE = os.environ.get("FASHION_CROP_WEIGHTS", "image")
S3_SECRET = os.environ.get("FASHION_CROP_S3_SECRET", "")
if WEIGHTS_MODE not in ("image", "hub"):
    raise SystemExit(f"FASHION_CROP_WEIGHTS is {WEIGHTS_MODE!r}; set it to image or hub")
try:
    LOADER = chosen_loader()  # weightcache (default) or library: which reads the weights (../loading.py)
    MEMORY_SNAPSHOT = memory_snapshot_enabled()
except ValueError as exc:
    raise SystemExit(str(exc)) from None

image = modal.Image.debian_slim(python_version="3.11")
if modal.is_local():  # in the container this file is /root/app.py: there is no checkout around it
    here = Path(__file__).resolve().parent
    local_weights = Path(os.environ.get("FASHION_CROP_WEIGHTS_DIR", here / "data" / "weights"))
    if WEIGHTS_MODE == "image" and not local_weights.is_dir():
        raise SystemExit(
            f"{local_weights} does not exist: run python -m examples.fashion_crop.prepare_weights first, "
            "or deploy with FASHION_CROP_WEIGHTS=hub"
        )
    image = image.pip_install_from_pyproject(
        str(here.parents[1] / "pyproject.toml"), optional_dependencies=["examples"]
    )
    if S3_SECRET:
        image = image.pip_install("boto3")
    if WEIGHTS_MODE == "image":
        image = image.add_local_dir(local_weights, BAKED_DIR, copy=True)
image = image.env(
    {
        "FASHION_CROP_WEIGHTS": WEIGHTS_MODE,
        "FASHION_CROP_S3_SECRET": S3_SECRET,
        LOADER_ENV: LOADER,
        MEMORY_SNAPSHOT_ENV: "1" if MEMORY_SNAPSHOT else "0",
    }
).add_local_python_source("weightcache", "examples")

app = modal.App(APP_NAME, image=image)
volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


@app.cls(
    gpu=GPU,
    volumes={CACHE_MOUNT: volume},
    secrets=[modal.Secret.from_name(S3_SECRET)] if S3_SECRET else [],
    timeout=300,
    startup_timeout=900,  # a first start copies or downloads 1.6 GB of weights onto the Volume
    min_containers=MIN_CONTAINERS,
    scaledown_window=SCALEDOWN_WINDOW,
    enable_memory_snapshot=MEMORY_SNAPSHOT,
)
@modal.concurrent(max_inputs=4)
class FashionCrop:
    """One container: weights ensured on the Volume and both models loaded at start, then served."""

    # With snapshots, prepare runs before the snapshot and start after each restore; without, Modal
    # runs both at start, in the order they are defined here (snap=True needs snapshots enabled).
    @modal.enter(snap=MEMORY_SNAPSHOT)
    def prepare(self) -> None:
        """Ensure the weights (a hit on the Volume after the first start); with memory snapshots,
        also load both models on the CPU, so that the snapshot holds them.

        Without snapshots the weights are read into memory in the background while torch and
        transformers import, so the load in :meth:`start` finds them there.
        """
        import time

        from examples.fashion_crop.weights import LINK_DIR, ensure_weights, placements_for
        from examples.loading import start_prefetch
        from weightcache import ModalVolumeStore, WeightCache

        cache = WeightCache(ModalVolumeStore(volume, CACHE_MOUNT))
        self.weights = ensure_weights(cache, placements_for(WEIGHTS_MODE), LINK_DIR)
        if not MEMORY_SNAPSHOT:
            start_prefetch([self.weights.detector_dir, self.weights.segmenter_dir])
            return
        from examples.fashion_crop.pipeline import FashionCropper
        from examples.snapshot import check_volume_released

        # No GPU is visible before a snapshot, and torch must not look for one yet: load on the CPU.
        started = time.perf_counter()
        self.cropper = FashionCropper.load(self.weights.detector_dir, self.weights.segmenter_dir, "cpu")
        self.load_seconds = time.perf_counter() - started
        for entry in self.weights.entries:
            cache.release(entry)  # the weights are in memory: the snapshot holds no file
        check_volume_released(CACHE_MOUNT)

    @modal.enter(snap=False)
    def start(self) -> None:
        """Put both models on the GPU (from the snapshot's CPU copy, or from the Volume); build the apps."""
        import time

        from examples.fashion_crop.pipeline import FashionCropper, default_device  # imports torch
        from examples.fashion_crop.seed_api import SeedOptions, create_seed_app
        from examples.fashion_crop.server import create_app
        from examples.fashion_crop.storage import uploader_from_env

        started = time.perf_counter()
        if MEMORY_SNAPSHOT:
            self.cropper.to(default_device())
            self.load_seconds += time.perf_counter() - started
        else:
            self.cropper = FashionCropper.load(self.weights.detector_dir, self.weights.segmenter_dir)
            self.load_seconds = time.perf_counter() - started
        self.web_app = create_app(self.cropper, self.weights, load_seconds=self.load_seconds)
        options = SeedOptions(upload=uploader_from_env(), expand=EXPAND_CATEGORIES)
        self.seed_app = create_seed_app(self.cropper, options)

    @modal.asgi_app(label=SEED_LABEL)
    def fastapi_app(self):
        """The seed's interface: ``GET /`` and JSON ``POST /crop`` answering crop URLs."""
        return self.seed_app

    @modal.asgi_app()
    def web(self):
        """The richer API: ``GET /`` (health, weights) and multipart ``POST /crop`` (items, PNGs)."""
        return self.web_app
