"""Run an example's app.py as its Modal container does (``weightcache.testing.modal_container``).

The app is loaded as ``modal deploy examples/<app>/app.py`` loads it, from the repository root; in
the container it is ``/root/app.py`` beside the image's ``examples`` and ``weightcache``, with
``modal.is_local()`` false, the image's ``.env`` and its Volume a FakeModalVolume under
``state_dir``. The heavy part (torch, diffusers, transformers) loads once per container, so each
test module starts few containers and shares them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from weightcache.testing.modal_container import ModalContainer, available

REPO = Path(__file__).resolve().parents[2]


def container(
    app_file: str,
    cls: str,
    state_dir: Path,
    *,
    snapshot: bool,
    env: dict[str, str] | None = None,
    secret_env: dict[str, str] | None = None,
) -> ModalContainer:
    """A container of ``cls`` (not started), deployed with memory snapshots on or off; skips if none runs."""
    if (why := available()) is not None:
        pytest.skip(why)
    deploy_env = {"EXAMPLES_MEMORY_SNAPSHOT": "1" if snapshot else "0", **(env or {})}
    return ModalContainer(
        app_file, cls, state_dir=state_dir, cwd=REPO, env=deploy_env, secret_env=secret_env or {}
    )


def by_first_segment(container: ModalContainer) -> Any:
    """An ASGI app forwarding ``/<endpoint>/...`` to the container's web method ``endpoint``
    (``-`` as ``_``, as in Modal's URLs), so a real HTTP client can call every endpoint."""

    async def forward(scope: dict, receive: Any, send: Any) -> None:
        while scope["type"] == "lifespan":  # nothing to start or stop: acknowledge both
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
        body = b""
        while (message := await receive())["type"] == "http.request":
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        name, _, rest = scope["path"].lstrip("/").partition("/")
        endpoint = name.replace("-", "_")
        if endpoint not in container.endpoints:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"no such endpoint"})
            return
        query = scope["query_string"].decode()
        answer = await anyio.to_thread.run_sync(
            lambda: container.request(
                scope["method"],
                "/" + rest + (f"?{query}" if query else ""),
                endpoint=endpoint,
                json_body=json.loads(body) if body else None,
            )
        )
        headers = [
            (key.encode(), value.encode())
            for key, value in answer.headers.items()
            if key not in ("content-length", "transfer-encoding")
        ]
        headers.append((b"content-length", str(len(answer.content)).encode()))
        await send({"type": "http.response.start", "status": answer.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": answer.content})

    return forward
