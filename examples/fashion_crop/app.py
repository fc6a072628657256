"""Modal wiring for fashion-crop-api: image, Volume, GPU class, and the FastAPI app it serves.

Deploy from the repository root (``examples`` and ``weightcache`` must be importable there)::

    python -m examples.fashion_crop.prepare_weights          # once: the weights to bake in
    modal deploy examples/fashion_crop/app.py
    FASHION_CROP_WEIGHTS=hub modal deploy examples/fashion_crop/app.py   # or: fetch from the Hub

Only Modal lives here; the model code (``pipeline.py``), the weights' sources (``weights.py``)
and the HTTP API (``server.py``) are plain Python, imported in the container only.
"""

from __future__ import annotations

import os
from pathlib import Path

import modal

from examples.fashion_crop.weights import BAKED_DIR

APP_NAME = "fashion-crop-api"
VOLUME_NAME = "fashion-model-weights"
CACHE_MOUNT = "/cache"
GPU = "A10G"
# The seed's keep_warm options, in Modal 1.x terms; both off by default. MIN_CONTAINERS = 1 keeps one
# container running at all times (no cold starts; billed while idle). SCALEDOWN_WINDOW keeps an idle
# container this many seconds before it stops (Modal's default is 60).
MIN_CONTAINERS = 0
SCALEDOWN_WINDOW = 60

HERE = Path(__file__).resolve().parent
# Read at deploy time and carried into the image's environment, so the container agrees.
WEIGHTS_MODE = os.environ.get("FASHION_CROP_WEIGHTS", "image")
LOCAL_WEIGHTS = Path(os.environ.get("FASHION_CROP_WEIGHTS_DIR", HERE / "data" / "weights"))

if WEIGHTS_MODE not in ("image", "hub"):
    raise SystemExit(f"FASHION_CROP_WEIGHTS is {WEIGHTS_MODE!r}; set it to image or hub")
if modal.is_local() and WEIGHTS_MODE == "image" and not LOCAL_WEIGHTS.is_dir():
    raise SystemExit(
        f"{LOCAL_WEIGHTS} does not exist: run python -m examples.fashion_crop.prepare_weights first, "
        "or deploy with FASHION_CROP_WEIGHTS=hub"
    )

image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install_from_pyproject(str(HERE.parents[1] / "pyproject.toml"), optional_dependencies=["examples"])
    .env({"FASHION_CROP_WEIGHTS": WEIGHTS_MODE})
)
if WEIGHTS_MODE == "image":
    image = image.add_local_dir(LOCAL_WEIGHTS, BAKED_DIR, copy=True)
image = image.add_local_python_source("weightcache", "examples")

app = modal.App(APP_NAME, image=image)
volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


@app.cls(
    gpu=GPU,
    volumes={CACHE_MOUNT: volume},
    timeout=300,
    startup_timeout=900,  # a first start copies or downloads 1.6 GB of weights onto the Volume
    min_containers=MIN_CONTAINERS,
    scaledown_window=SCALEDOWN_WINDOW,
)
@modal.concurrent(max_inputs=4)
class FashionCrop:
    """One container: weights ensured on the Volume and both models loaded at start, then served."""

    @modal.enter()
    def load(self) -> None:
        """Ensure the weights (a hit on the Volume after the first start) and load the models."""
        from examples.fashion_crop.server import build_app
        from examples.fashion_crop.weights import placements_for
        from weightcache import WeightCache
        from weightcache.providers.modal_volume import ModalVolumeStore

        cache = WeightCache(ModalVolumeStore(volume, CACHE_MOUNT))
        self.web_app = build_app(cache, placements_for(WEIGHTS_MODE))

    @modal.asgi_app()
    def web(self):
        """The FastAPI app: ``GET /`` and ``POST /crop``."""
        return self.web_app
