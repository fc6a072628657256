"""Modal wiring for shuttle-jaguar: image, Volume, GPU class, and the FastAPI app it serves.

Deploy from the repository root (``examples`` and ``weightcache`` must be importable there)::

    modal deploy examples/jaguar/app.py

The first container fetches the model (about 34 GB) from the Hugging Face Hub onto the Volume;
later ones find it there. Pre-populate the Volume from your machine with ``weightcache push``
(see README.md) so that no container ever waits for the download. Only Modal lives here; the
model code (``pipeline.py``) and the HTTP API (``server.py``) are plain Python.
"""

from __future__ import annotations

from pathlib import Path

import modal

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

image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install_from_pyproject(str(HERE.parents[1] / "pyproject.toml"), optional_dependencies=["examples"])
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
        """Ensure the weights (a hit on the Volume after the first start) and load the pipeline."""
        from examples.jaguar.pipeline import JaguarModel
        from examples.jaguar.server import create_app
        from examples.jaguar.weights import jaguar_source
        from weightcache import WeightCache
        from weightcache.providers.modal_volume import ModalVolumeStore

        model = JaguarModel(WeightCache(ModalVolumeStore(volume, CACHE_MOUNT)), jaguar_source())
        model.load()
        self.web_app = create_app(model)

    @modal.asgi_app()
    def web(self):
        """The FastAPI app: ``POST /generate``, ``GET /info``, ``POST /reload-model``."""
        return self.web_app
