"""A small Modal app as users write them: weights ensured in ``@modal.enter``, served by FastAPI.

Paths into the checkout are computed only where it is deployed (``modal.is_local()``).
"""

import os
from pathlib import Path

import modal

from tests.modal_apps.helper_lib import GREETING

CACHE = "/cache"
if modal.is_local():
    HERE = Path(__file__).resolve().parent
    # Where the store goes, fixed at deploy time (a test passes a typo here).
    store_path = os.environ.get("CACHE_APP_STORE", CACHE)
    # A test sets CACHE_APP_HOLD=1 to keep a file of the Volume open from the snap phase on.
    hold = os.environ.get("CACHE_APP_HOLD", "0")
    image = (
        modal.Image.debian_slim(python_version="3.11")
        .add_local_file(HERE / "assets" / "greeting.txt", "/etc/cache-app/copied.txt", copy=True)
        .env({"CACHE_APP_MODE": "container", "CACHE_APP_STORE": store_path, "CACHE_APP_HOLD": hold})
        .add_local_dir(HERE / "assets", "/assets")
        .add_local_file(HERE / "assets" / "greeting.txt", "/etc/cache-app/greeting.txt")
        .add_local_python_source("weightcache", "tests")
    )
else:
    image = modal.Image.debian_slim(python_version="3.11")

app = modal.App("cache-app", image=image)
volume = modal.Volume.from_name("cache-app-weights", create_if_missing=True)


@app.cls(volumes={CACHE: volume}, enable_memory_snapshot=True)
class Service:
    """Ensures a directory of weights from the image onto the Volume, then serves what it found."""

    @modal.enter(snap=True)
    def ensure(self) -> None:
        """Snap phase: ensure the weights (a miss on the first start, a hit afterwards)."""
        from weightcache import ModalVolumeStore, WeightCache

        self.phases = ["snap"]
        cache = WeightCache(ModalVolumeStore(volume, os.environ["CACHE_APP_STORE"]))
        self.entry = cache.ensure("dir:///assets")
        if os.environ["CACHE_APP_HOLD"] == "1":
            self.held = open(self.entry.path / "greeting.txt")  # noqa: SIM115 (held on purpose)

    @modal.enter(snap=False)
    def restore(self) -> None:
        """After the snapshot (or right after the snap phase without snapshots)."""
        self.phases.append("restore")

    @modal.asgi_app()
    def web(self):
        """``GET /info``: what the container saw."""
        from fastapi import FastAPI

        web_app = FastAPI()

        @web_app.get("/info")
        def info() -> dict[str, object]:
            return {
                "hit": self.entry.hit,
                "entry_path": str(self.entry.path),
                "phases": self.phases,
                "file": __file__,
                "cwd": os.getcwd(),
                "is_local": modal.is_local(),
                "mode": os.environ.get("CACHE_APP_MODE"),
                "greeting": GREETING,
                "etc": Path("/etc/cache-app/greeting.txt").read_text().strip(),
                "copied": Path("/etc/cache-app/copied.txt").read_text().strip(),
            }

        return web_app
