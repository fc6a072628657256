"""Where shuttle-jaguar's weights come from: its Hugging Face repository, only the diffusers parts.

The repository also holds single-file checkpoints (fp8, GGUF) that FluxPipeline does not need;
fetching only ``model_index.json`` and the component folders keeps the Volume to what is loaded.
"""

from __future__ import annotations

from weightcache.providers.hf import HFSource

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
