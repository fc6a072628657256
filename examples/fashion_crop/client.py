"""Call a deployed fashion-crop-api: send a photo and categories, save each cut-out item as a PNG.

    python examples/fashion_crop/client.py --url https://WORKSPACE--fashion-crop-api-fashioncrop-web.modal.run
    python examples/fashion_crop/client.py --url URL --image photo.jpg --categories shirt,jeans --out crops/
    python examples/fashion_crop/client.py --write-example outfit.png

Without ``--image`` it sends a drawing of an outfit made here (nothing is downloaded).
Needs only ``httpx`` and ``pillow``.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

# A cold start loads both models before answering. Modal answers a request still running after 150 s
# with a 303 to a URL that waits for the result: the client follows it (httpx does not by default).
TIMEOUT_SECONDS = 600.0


def example_outfit(width: int = 384, height: int = 512) -> Image.Image:
    """A flat drawing of a figure in a red shirt, blue jeans and black shoes on a light background."""
    image = Image.new("RGB", (width, height), (235, 232, 225))
    draw = ImageDraw.Draw(image)
    cx = width // 2
    draw.ellipse((cx - 32, 24, cx + 32, 96), fill=(224, 180, 150))  # head
    draw.polygon(
        [
            (cx - 90, 110),
            (cx + 90, 110),
            (cx + 120, 200),
            (cx + 70, 210),
            (cx + 62, 270),
            (cx - 62, 270),
            (cx - 70, 210),
            (cx - 120, 200),
        ],
        fill=(196, 30, 45),
    )  # shirt
    draw.rectangle((cx - 62, 270, cx + 62, 300), fill=(40, 70, 140))  # waist of the jeans
    draw.polygon([(cx - 62, 300), (cx - 4, 300), (cx - 12, 450), (cx - 58, 450)], fill=(40, 70, 140))
    draw.polygon([(cx + 4, 300), (cx + 62, 300), (cx + 58, 450), (cx + 12, 450)], fill=(40, 70, 140))
    draw.rounded_rectangle((cx - 66, 450, cx - 8, 478), radius=8, fill=(25, 25, 25))  # shoes
    draw.rounded_rectangle((cx + 8, 450, cx + 66, 478), radius=8, fill=(25, 25, 25))
    return image


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def crop(http: httpx.Client, image: bytes, categories: list[str], *, box_threshold: float = 0.35) -> dict:
    """``POST /crop`` and return the JSON answer; raises ``httpx.HTTPStatusError`` on a 4xx/5xx."""
    response = http.post(
        "/crop",
        files={"image": ("image", image, "application/octet-stream")},
        data={"categories": categories, "box_threshold": str(box_threshold)},
    )
    response.raise_for_status()
    return response.json()


def error_detail(response: httpx.Response) -> str:
    """The ``detail`` of a JSON error answer, else the start of the body (a proxy's HTML page...)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else response.text.strip()[:200] or response.reason_phrase


def save_items(result: dict, out_dir: Path) -> list[Path]:
    """Write each item's cut-out as ``NN-label.png`` in ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, item in enumerate(result["items"], start=1):
        path = out_dir / f"{number:02d}-{item['label'].replace(' ', '_')}.png"
        path.write_bytes(base64.b64decode(item["png_base64"]))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the service's URL (printed by `modal deploy`)")
    parser.add_argument("--image", type=Path, help="a photo to send (default: a drawn example outfit)")
    parser.add_argument(
        "--categories", default="shirt,jeans,shoes", help="comma-separated clothing categories"
    )
    parser.add_argument("--box-threshold", type=float, default=0.35)
    parser.add_argument("--out", type=Path, default=Path("crops"), help="where to save the cut-outs")
    parser.add_argument(
        "--write-example", type=Path, metavar="PNG", help="only write the example image there"
    )
    args = parser.parse_args(argv)
    if args.write_example:
        example_outfit().save(args.write_example)
        print(f"wrote {args.write_example}")
        return 0
    if not args.url:
        parser.error("--url is required (the URL `modal deploy` printed)")
    image = args.image.read_bytes() if args.image else png_bytes(example_outfit())
    with httpx.Client(base_url=args.url, timeout=TIMEOUT_SECONDS, follow_redirects=True) as http:
        try:
            health = http.get("/")
            health.raise_for_status()
            status = health.json()
            print(f"service: weights from {status['weights']['origin']}, device {status['device']}")
            result = crop(http, image, args.categories.split(","), box_threshold=args.box_threshold)
        except httpx.HTTPStatusError as exc:
            print(f"error {exc.response.status_code}: {error_detail(exc.response)}", file=sys.stderr)
            return 1
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            print(f"error: {args.url} did not answer as fashion-crop-api does: {exc!r}", file=sys.stderr)
            return 1
    print(f"{len(result['items'])} item(s) in {result['seconds']:.2f} s on the models")
    for item, path in zip(result["items"], save_items(result, args.out), strict=True):
        print(f"  {item['label']:<12} score {item['score']:.2f}  box {item['box']}  -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
