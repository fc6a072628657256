"""Try a deployed shuttle-jaguar service: where the model loaded from, one image, how long it took.

    python examples/jaguar/test_generate.py --url https://WORKSPACE--shuttle-jaguar-jaguarservice-web.modal.run
    python examples/jaguar/test_generate.py                      # the URL is remembered
    python examples/jaguar/test_generate.py --display --prompt "a jaguar in the rain"

The URL given once is saved (``--config``, default ``~/.config/shuttle-jaguar/client.json``) and
reused. ``--display`` opens the image, or saves it to ``--output`` when there is no display.
Needs only ``httpx`` and ``pillow``. (Not a pytest file: the name follows the seed app's script.)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

DEFAULT_PROMPT = "white cat holding a sign reading Scuffed"
TIMEOUT_SECONDS = 600.0  # a first start may fetch 34 GB of weights before answering


def default_config_path() -> Path:
    """Where the URL is remembered."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "shuttle-jaguar" / "client.json"


def resolve_url(url: str | None, config_path: Path) -> str:
    """``url`` (and remember it), else the remembered one, else a one-line error."""
    if url:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps({"url": url.rstrip("/")}) + "\n")
        return url.rstrip("/")
    try:
        return json.loads(config_path.read_text())["url"]
    except (OSError, ValueError, KeyError):
        raise SystemExit(f"no URL yet: pass --url once (it is saved to {config_path})") from None


def has_display() -> bool:
    """Whether ``Image.show()`` can open a window here."""
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def run(
    http: httpx.Client, prompt: str, *, width: int, height: int, seed: int | None
) -> tuple[dict, Image.Image]:
    """Ask ``/info`` then ``/generate``, print what a person wants to know, return both."""
    info = http.get("/info")
    info.raise_for_status()
    model = info.json()
    from_volume = model["source"] == "volume"
    print(f"model {model['model']} @ {model['revision']} on {model['device']}")
    print(f"loaded from the volume: {'yes' if from_volume else 'no, fetched from ' + model['source']}")
    print(f"start-up: weights {model['weights_seconds']:.2f} s, pipeline {model['load_seconds']:.2f} s")
    body = {"prompt": prompt, "width": width, "height": height, "seed": seed}
    started = time.perf_counter()
    response = http.post("/generate", json={key: value for key, value in body.items() if value is not None})
    round_trip = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"generate failed ({response.status_code}): {response.json().get('detail')}")
    image = Image.open(io.BytesIO(response.content))
    print(
        f"generated {image.width}x{image.height} in {float(response.headers['X-Generation-Seconds']):.2f} s "
        f"({round_trip:.2f} s round trip), seed {response.headers['X-Seed']}"
    )
    return model, image


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the service's URL (printed by `modal deploy`); saved for next time")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--display", action="store_true", help="show the image (saved when there is no display)"
    )
    parser.add_argument("--output", type=Path, default=Path("jaguar_output.png"))
    parser.add_argument("--config", type=Path, default=default_config_path(), help="where the URL is saved")
    args = parser.parse_args(argv)
    url = resolve_url(args.url, args.config)
    with httpx.Client(base_url=url, timeout=TIMEOUT_SECONDS) as http:
        _, image = run(http, args.prompt, width=args.width, height=args.height, seed=args.seed)
    if args.display and has_display():
        image.show()
    elif args.display:
        image.save(args.output)
        print(f"no display here: saved the image to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
