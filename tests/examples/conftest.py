"""Fixtures for the example apps' tests: tiny models built once per session, services on local stores.

Without the ``examples`` extra the model tests are not collected; ``test_examples_extra.py``
then reports one skip that names the install line.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .extras import MISSING_MODULES

if MISSING_MODULES:
    collect_ignore_glob = [
        "test_fashion_crop.py",
        "test_fashion_crop_seed.py",
        "test_jaguar.py",
        "test_jaguar_seed.py",
        "test_loading.py",
        "test_on_modal_volume.py",
    ]


@pytest.fixture(autouse=True)
def default_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apps' default weights loader (weightcache), whatever the shell running the tests set."""
    monkeypatch.delenv("EXAMPLES_WEIGHTS_LOADER", raising=False)


@pytest.fixture(scope="session")
def baked_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``prepare_weights.py`` leaves in ``data/weights``: both models' folders, tiny versions."""
    from examples.fashion_crop.weights import DETECTOR, SEGMENTER

    from .tiny_models import save_grounding_dino, save_sam2

    root = tmp_path_factory.mktemp("image") / "initial_weights"
    save_grounding_dino(root / DETECTOR.folder)
    save_sam2(root / SEGMENTER.folder)
    return root


@pytest.fixture(scope="session")
def flux_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny FluxPipeline in diffusers' layout."""
    from .tiny_models import save_flux

    return save_flux(tmp_path_factory.mktemp("flux") / "shuttle-jaguar")


@pytest.fixture
def hub() -> Iterator:
    """A fake Hugging Face Hub on 127.0.0.1 (weightcache.testing.FakeHub)."""
    from weightcache.testing import FakeHub

    with FakeHub() as fake_hub:
        yield fake_hub


@pytest.fixture
def serve() -> Iterator:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread; returns its base URL."""
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
