"""Fetch GroundingDINO and SAM-2 from the Hugging Face Hub into ``data/weights/``, to bake into the image.

    python -m examples.fashion_crop.prepare_weights       # from the repository root
    modal deploy examples/fashion_crop/app.py

Only for the ``image`` way (``weights.py``). The files go through weightcache on this machine
(default store: ``$WEIGHTCACHE_HOME`` or ``~/.cache/weightcache``), so each is checked against
the Hub's SHA-256 and a second run copies from the store instead of downloading again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from examples.fashion_crop.weights import DETECTOR, SEGMENTER, hub_source
from weightcache import WeightCache, WeightCacheError

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "weights"


def prepare(out: Path, cache: WeightCache) -> list[str]:
    """Copy both models' files into ``out/<folder>``; return one line per model saying what is there."""
    lines = []
    for model in (DETECTOR, SEGMENTER):
        entry = cache.ensure(hub_source(model), link_to=out / model.folder, link_mode="copy")
        lines.append(
            f"{model.repo} @ {entry.version}: {len(entry.manifest.files)} files, "
            f"{entry.total_bytes / 1e6:.0f} MB -> {out / model.folder}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the directory app.py bakes in")
    parser.add_argument("--store", help="weightcache store to download through (default: the local one)")
    args = parser.parse_args(argv)
    try:
        lines = prepare(args.out, WeightCache(args.store))
    except WeightCacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
