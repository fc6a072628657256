"""Where shuttle-jaguar's weights come from: its Hugging Face repository, only the diffusers parts.

The repository also holds single-file checkpoints (fp8, GGUF) that FluxPipeline does not need;
fetching only ``model_index.json`` and the component folders keeps the Volume to what is loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from weightcache import Entry, HFSource, Source, WeightCache

REPO = "shuttleai/shuttle-jaguar"
# Pin this to the commit you tested (a 40-hex sha): a branch is resolved once, when first cached, and
# the store remembers that commit until a reload asks again. `weightcache status` shows which one it is.
REVISION = "main"
DIFFUSERS_FILES = (
    "model_index.json",
    "scheduler/*",
    "text_encoder/*",
    "text_encoder_2/*",
    "tokenizer/*",
    "tokenizer_2/*",
    "transformer/*",
    "vae/*",
)


def jaguar_source(endpoint: str | None = None) -> HFSource:
    """shuttle-jaguar at ``REVISION``, diffusers files only; ``endpoint`` points at a mirror or a fake Hub."""
    return HFSource(REPO, REVISION, allow_patterns=list(DIFFUSERS_FILES), endpoint=endpoint)


@dataclass(frozen=True)
class EnsuredWeights:
    """The cached entry and how long ``ensure`` took (a manifest read and stats on a hit)."""

    entry: Entry
    seconds: float


def ensure_weights(cache: WeightCache, source: Source, *, force: bool = False) -> EnsuredWeights:
    """Make ``source`` available in ``cache``; ``force`` re-fetches it (resolving a branch again)."""
    started = time.perf_counter()
    entry = cache.ensure(source, force=force, refresh=force)
    return EnsuredWeights(entry, time.perf_counter() - started)
