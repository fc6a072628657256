"""One simulated Modal container of case 3's herd (``python -m bench.herd_container PATTERN VOLUME READY``).

It opens its view of the fake Volume and sets up, says it is ready, waits for the parent's
``go`` so that the whole herd starts at once, loads the weights with its pattern, and prints
one JSON line: whether it found them cached, and when it had them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from weightcache import ModalVolumeStore, WeightCache
from weightcache.testing import FakeModalDict, FakeModalVolume, FakeVolumeContainer

from .servers import REPO_ID

Load = Callable[[], "bool | None"]


def _hub_client_ready() -> None:
    # Import the Hub client and build its HTTP client (an SSL context: ~35 ms of CPU) during setup,
    # for every pattern alike: on Modal each container does this on its own CPUs, while here
    # eight processes would queue for two cores and the herd would measure the machine.
    from huggingface_hub.utils import get_session

    get_session()


def _weightcache(container: FakeVolumeContainer, *, with_dict: bool) -> Load:
    import weightcache.providers.sources._hf_client  # noqa: F401

    _hub_client_ready()

    # The lease Dict lives beside the Volume's directory, so each herd starts with an empty one.
    leases = FakeModalDict(container.mount_path.parent.parent / "leases.dict") if with_dict else None
    cache = WeightCache(ModalVolumeStore(container, container.mount_path, lease_dict=leases))
    return lambda: cache.ensure(f"hf://{REPO_ID}").hit


def _modal_examples(container: FakeVolumeContainer) -> Load:
    from huggingface_hub import snapshot_download

    _hub_client_ready()

    def load() -> None:
        # Modal's examples mount the Volume as the HF cache, download, then commit.
        snapshot_download(REPO_ID, cache_dir=container.mount_path / "hf", endpoint=os.environ["HF_ENDPOINT"])
        container.commit()

    return load


PATTERNS: dict[str, Callable[[FakeVolumeContainer], Load]] = {
    "weightcache": lambda container: _weightcache(container, with_dict=True),
    "weightcache-no-dict": lambda container: _weightcache(container, with_dict=False),
    "modal-examples": _modal_examples,
}


def main() -> None:
    """Container side: set up, report ready, wait for ``go``, load, print the outcome."""
    pattern, volume_root, ready_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    # Hard links: a reload costs metadata, as on Modal, not a copy of every byte.
    container = FakeModalVolume(volume_root, link_files=True).container()
    load = PATTERNS[pattern](container)
    (ready_dir / f"{os.getpid()}.ready").touch()
    while not (ready_dir / "go").exists():
        time.sleep(0.005)
    hit = load()
    finished_at = time.time()
    container.exit()
    print(json.dumps({"hit": hit, "finished_at": finished_at}))


if __name__ == "__main__":
    main()
