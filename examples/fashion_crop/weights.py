"""Where fashion_crop's weights come from, and getting them onto the volume through weightcache.

Two ways, chosen at deploy time (README.md says when to pick which):

- ``image``: the seed's pattern. ``prepare_weights.py`` downloads both models into
  ``data/weights/`` on your machine; the image carries that directory to ``BAKED_DIR``; the first
  container promotes it to the volume with ``ImageDirSource``; later ones find it there.
- ``hub``: each model is fetched from the Hugging Face Hub straight onto the volume.

Either way the files end up linked under ``LINK_DIR`` (``/root/data/weights``), one folder per model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from weightcache import Entry, HFSource, ImageDirSource, Source, WeightCache, WeightCacheError

BAKED_DIR = "/tmp/initial_weights"  # where the image carries the weights (the seed's path)
LINK_DIR = "/root/data/weights"  # where the app reads them (the seed's path)
ORIGIN_BY_SCHEME = {"dir": "image", "hf": "huggingface"}
# The seed's start-up lines, so that `modal app logs fashion-crop-api | grep -i volume` finds them.
FOUND_LINE = "✅ Models found in volume cache"
MISSING_LINE = "📥 Models not found in volume cache. Downloading (first time only)..."

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubModel:
    """A model on the Hugging Face Hub: repository, pinned revision, the files needed, its folder here."""

    repo: str
    revision: str
    include: tuple[str, ...]
    folder: str


# Only the transformers files: the repositories also hold the original checkpoints (.pt/.pth).
DETECTOR = HubModel(
    "IDEA-Research/grounding-dino-tiny", "main", ("*.json", "*.txt", "*.safetensors"), "grounding-dino-tiny"
)
SEGMENTER = HubModel("facebook/sam2.1-hiera-large", "main", ("*.json", "*.safetensors"), "sam2.1-hiera-large")

#: A source and the folder under LINK_DIR its files go to ("" for the top).
Placement = tuple[Source, str]


@dataclass(frozen=True)
class Weights:
    """The weights as the app sees them, and how they got there.

    ``origin`` is ``"volume"`` when every entry was already cached, else where the missing
    ones were fetched from (``"image"`` or ``"huggingface"``). ``versions`` maps each source
    to the version cached (a fingerprint for an image directory, a commit for the Hub).
    ``entries`` are the cached entries themselves.
    """

    root: Path
    origin: str
    versions: dict[str, str]
    seconds: float
    entries: tuple[Entry, ...] = ()

    @property
    def detector_dir(self) -> Path:
        """GroundingDINO's folder."""
        return self.root / DETECTOR.folder

    @property
    def segmenter_dir(self) -> Path:
        """SAM-2's folder."""
        return self.root / SEGMENTER.folder


def image_placements(baked_dir: str = BAKED_DIR) -> list[Placement]:
    """The ``image`` way: one directory, baked into the image, holding both models' folders."""
    return [(ImageDirSource(baked_dir), "")]


def hub_source(model: HubModel, endpoint: str | None = None) -> HFSource:
    """``model``'s repository at its revision, only the files the app needs."""
    return HFSource(model.repo, model.revision, allow_patterns=list(model.include), endpoint=endpoint)


def hub_placements(endpoint: str | None = None) -> list[Placement]:
    """The ``hub`` way: each model from its Hub repository into its own folder."""
    return [(hub_source(model, endpoint), model.folder) for model in (DETECTOR, SEGMENTER)]


def placements_for(mode: str) -> list[Placement]:
    """The placements for a deploy-time mode, ``image`` or ``hub``."""
    return image_placements() if mode == "image" else hub_placements()


def ensure_weights(
    cache: WeightCache,
    placements: list[Placement],
    link_to: str = LINK_DIR,
    *,
    say: Callable[[str], None] = print,
) -> Weights:
    """Make every source's files available under ``link_to`` (fetching what the store lacks).

    First ``say`` (printed, so it is in the container's log) whether every model is already in
    the store, with the seed's lines ``FOUND_LINE`` and ``MISSING_LINE``.
    """
    started = time.perf_counter()
    say(FOUND_LINE if all(_cached(cache, source) for source, _ in placements) else MISSING_LINE)
    root = Path(link_to)
    missed_schemes, versions, entries = [], {}, []
    for source, folder in placements:
        entry = cache.ensure(source, link_to=root / folder)
        entries.append(entry)
        versions[entry.source] = entry.version
        if not entry.hit:
            missed_schemes.append(source.scheme)
    origin = ORIGIN_BY_SCHEME.get(missed_schemes[0], missed_schemes[0]) if missed_schemes else "volume"
    return Weights(root, origin, versions, time.perf_counter() - started, tuple(entries))


def _cached(cache: WeightCache, source: Source) -> bool:
    """Whether ``source`` is in the store now; a source that cannot answer counts as not cached."""
    try:
        return cache.status(source).cached
    except WeightCacheError as exc:
        logger.info("cannot tell whether %s is cached: %s", source.uri, exc)
        return False
