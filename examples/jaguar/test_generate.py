"""Try a deployed shuttle-jaguar through the seed's endpoints: model info, one image, the timings.

    python examples/jaguar/test_generate.py --url https://WORKSPACE--shuttle-jaguar
    python examples/jaguar/test_generate.py                      # the URL is remembered
    python examples/jaguar/test_generate.py --display --prompt "a jaguar in the rain"

As the seed's ``test-generate.py``: ``--url`` is the prefix that ``modal deploy`` prints before
``-shuttlejaguarmodel-<endpoint>.modal.run``, saved in ``.api_url`` beside this script and reused.
It prints the model's info (and whether it was loaded from the volume), generates "white cat
holding a sign reading Scuffed" at 768x768, prints the timings and saves ``test_output.png``;
``--display`` also shows it. A URL of a local server (``http://127.0.0.1:8000``) is called at
``/<endpoint>`` instead (``seed_api.create_seed_app``). Needs only ``httpx`` and ``pillow``.
(Not a pytest file: the name follows the seed app's script.)
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

DEFAULT_PROMPT = "white cat holding a sign reading Scuffed"
DEFAULT_SIZE = 768
CLASS_LABEL = "shuttlejaguarmodel"  # the seed's class ShuttleJaguarModel, as Modal puts it in URLs
URL_FILE = Path(__file__).resolve().parent / ".api_url"
OUTPUT = Path("test_output.png")
# A first start may fetch 34 GB before answering. Modal answers a request still running after 150 s
# with a 303 to a URL that waits for the result: the client follows it (httpx does not by default).
TIMEOUT_SECONDS = 1800.0


class ServiceError(Exception):
    """The service answered an error; the message says which endpoint and why."""


def endpoint_url(base: str, endpoint: str) -> str:
    """Where ``endpoint`` is: ``BASE-shuttlejaguarmodel-ENDPOINT.modal.run`` for a Modal prefix
    (its host holds ``--``, as ``WORKSPACE--shuttle-jaguar``), else ``BASE/ENDPOINT``."""
    if "--" in (urlsplit(base).hostname or ""):
        return f"{base}-{CLASS_LABEL}-{endpoint}.modal.run"
    return f"{base}/{endpoint}"


def resolve_url(url: str | None, url_file: Path = URL_FILE) -> str:
    """``url`` (and remember it), else the remembered one, else a one-line error."""
    if url:
        url = url.rstrip("/")
        url_file.write_text(url + "\n")
        return url
    try:
        return url_file.read_text().strip()
    except OSError:
        raise SystemExit(f"no URL yet: pass --url once (it is saved to {url_file})") from None


def call(http: httpx.Client, method: str, url: str, **kwargs: object) -> dict:
    """The JSON answer of ``url``, or :class:`ServiceError` saying what went wrong in one line."""
    try:
        response = http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ServiceError(f"{url}: {exc or type(exc).__name__}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        detail = body.get("detail") if isinstance(body, dict) else response.text.strip()[:200]
        raise ServiceError(f"{url} answered {response.status_code}: {detail or response.reason_phrase}")
    return body


def run(http: httpx.Client, base: str, prompt: str, size: int) -> Image.Image:
    """Ask ``info`` then ``generate-api``, print what a person wants to know, return the image."""
    info = call(http, "GET", endpoint_url(base, "info"))
    print(f"model: {info['model']} ({info['parameters']}, {info['version']}, {info['format']})")
    from_volume = info.get("source") == "volume"
    print(f"loaded from the volume: {'yes' if from_volume else 'no, from ' + str(info.get('source'))}")
    print(f"volume path: {info.get('volume_path')}")
    params = {"prompt": prompt, "height": size, "width": size}
    started = time.perf_counter()
    result = call(http, "GET", endpoint_url(base, "generate-api"), params=params)
    round_trip = time.perf_counter() - started
    image = Image.open(io.BytesIO(base64.b64decode(result["image"])))
    used = result["parameters"]
    print(f"generated {image.width}x{image.height} with seed {used['seed']}, {used['num_steps']} steps")
    print(f"generation time: {result['generation_time']:.2f} s (round trip {round_trip:.2f} s)")
    return image


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="the prefix `modal deploy` printed, e.g. https://WORKSPACE--shuttle-jaguar"
    )
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="width and height (default 768)")
    parser.add_argument("--display", action="store_true", help="also show the image")
    args = parser.parse_args(argv)
    base = resolve_url(args.url)
    with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=True) as http:
        try:
            image = run(http, base, args.prompt, args.size)
        except ServiceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    image.save(OUTPUT)
    print(f"saved {OUTPUT}")
    if args.display:
        image.show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
