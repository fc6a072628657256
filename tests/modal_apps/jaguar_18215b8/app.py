# examples/jaguar/app.py as of commit 18215b8, verbatim: it computed HERE.parents[1] at import, which
# raises IndexError in every container (there this file is /root/app.py). Kept to check the harness.
"""Modal wiring for shuttle-jaguar: image, Volume, GPU class, and the FastAPI app it serves.

Deploy from the repository root (``examples`` and ``weightcache`` must be importable there)::

    modal deploy examples/jaguar/app.py

The first container fetches the model (about 34 GB) from the Hugging Face Hub onto the Volume;
later ones find it there. Pre-populate the Volume from your machine with ``weightcache push``
(see README.md) so that no container ever waits for the download. Only Modal lives here; the
model code (``pipeline.py``) and the HTTP API (``server.py``) are plain Python.

``EXAMPLES_WEIGHTS_LOADER=library modal deploy examples/jaguar/app.py`` loads the transformer with
diffusers' own loader instead of weightcache's, to compare (``../loading.py``).
"""

from __future__ import annotations

from pathlib import Path

import modal

from examples.loading import LOADER_ENV, chosen_loader

APP_NAME = "shuttle-jaguar"
VOLUME_NAME = "jaguar-model-weights"
CACHE_MOUNT = "/cache"
GPU = "L40S"  # 48 GB: the bf16 pipeline (transformer + T5-XXL + CLIP + VAE) needs about 34 GB
# The seed's keep_warm options, in Modal 1.x terms; both off by default. MIN_CONTAINERS = 1 keeps one
# container running at all times (no cold starts; billed while idle). SCALEDOWN_WINDOW keeps an idle
# container this many seconds before it stops (Modal's default is 60).
MIN_CONTAINERS = 0
SCALEDOWN_WINDOW = 60

HERE = Path(__file__).resolve().parent
try:
    LOADER = chosen_loader()  # weightcache (default) or library: which reads the transformer (../loading.py)
except ValueError as exc:
    raise SystemExit(str(exc)) from None

image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install_from_pyproject(str(HERE.parents[1] / "pyproject.toml"), optional_dependencies=["examples"])
    .env({LOADER_ENV: LOADER})  # read at deploy time; the container agrees
    .add_local_python_source("weightcache", "examples")
)
app = modal.App(APP_NAME, image=image)
volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


@app.cls(
    gpu=GPU,
    volumes={CACHE_MOUNT: volume},
    timeout=600,
    startup_timeout=1800,  # a first start with an empty Volume downloads 34 GB
    min_containers=MIN_CONTAINERS,
    scaledown_window=SCALEDOWN_WINDOW,
)
@modal.concurrent(max_inputs=4)  # /info answers while an image is generated (generation is serialised)
class JaguarService:
    """One container: the model ensured on the Volume and loaded at start, then served."""

    @modal.enter()
    def load(self) -> None:
        """Ensure the weights (a hit on the Volume after the first start), then load the pipeline.

        The files are read into memory in the background, the transformer first, while torch and
        diffusers import (seconds), so the load finds them there instead of waiting on the Volume.
        """
        from examples.jaguar.weights import ensure_weights, jaguar_source
        from examples.loading import start_prefetch
        from weightcache import WeightCache
        from weightcache.providers.stores.modal_volume import ModalVolumeStore

        cache, source = WeightCache(ModalVolumeStore(volume, CACHE_MOUNT)), jaguar_source()
        ensured = ensure_weights(cache, source)
        start_prefetch([ensured.entry.path / "transformer", ensured.entry])
        from examples.jaguar.pipeline import JaguarModel  # imports torch and diffusers
        from examples.jaguar.server import create_app

        model = JaguarModel(cache, source)
        model.load(ensured)
        self.web_app = create_app(model)

    @modal.asgi_app()
    def web(self):
        """The FastAPI app: ``POST /generate``, ``GET /info``, ``POST /reload-model``."""
        return self.web_app
