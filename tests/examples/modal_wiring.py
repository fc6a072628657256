"""Drive an example's app.py class as its container does, through the real modal SDK's own helpers.

No Modal account and no container: the module is imported, an instance of the user class is made,
its ``@modal.enter`` methods run in the SDK's order (``snap=True`` ones first, as before a memory
snapshot, then the rest), and each web endpoint becomes the ASGI app the container serves:
the method's own return for ``@modal.asgi_app()``, and for ``@modal.fastapi_endpoint`` the app
modal builds around it (``modal/_runtime/asgi.py``, ``magic_fastapi_app``).
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

from modal._partial_function import (
    _find_callables_for_obj,
    _find_partial_methods_for_user_cls,
    _PartialFunctionFlags,
)
from modal._runtime.asgi import magic_fastapi_app
from modal_proto import api_pb2

REPO = Path(__file__).resolve().parents[2]
_numbers = itertools.count()


def import_app(relative_path: str) -> ModuleType:
    """Import ``examples/<app>/app.py`` by path, as ``modal deploy`` does (a fresh module each call)."""
    spec = importlib.util.spec_from_file_location(f"example_app_{next(_numbers)}", REPO / relative_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instance(module: ModuleType, cls_name: str) -> Any:
    """An instance of the class behind the ``modal.Cls`` named ``cls_name``."""
    return getattr(module, cls_name)._get_user_cls()()


def enter(obj: Any, *, snap: bool) -> list[str]:
    """Run ``obj``'s enter methods of one phase (``snap=True``: before the snapshot); return their names."""
    flag = _PartialFunctionFlags.ENTER_PRE_SNAPSHOT if snap else _PartialFunctionFlags.ENTER_POST_SNAPSHOT
    methods = _find_callables_for_obj(obj, flag)
    for method in methods.values():
        method()
    return list(methods)


def web_endpoints(cls: type) -> dict[str, api_pb2.WebhookConfig]:
    """Each web method of ``cls`` and its webhook config (type, HTTP method, requested label)."""
    methods = _find_partial_methods_for_user_cls(cls, _PartialFunctionFlags.WEB_INTERFACE)
    return {name: method.params.webhook_config for name, method in methods.items()}


def endpoint_app(obj: Any, name: str) -> Any:
    """The ASGI app the container serves for web method ``name`` of ``obj``."""
    method = _find_partial_methods_for_user_cls(type(obj), _PartialFunctionFlags.WEB_INTERFACE)[name]
    bound = method.raw_f.__get__(obj)
    config = method.params.webhook_config
    if config.type == api_pb2.WEBHOOK_TYPE_FUNCTION:
        return magic_fastapi_app(bound, config.method, config.web_endpoint_docs)
    return bound()


def by_first_segment(apps: dict[str, Any]) -> Any:
    """One ASGI app serving ``apps[name]`` at ``/name`` (each sees its requests at ``/``)."""

    async def dispatch(scope: dict, receive: Any, send: Any) -> None:
        while scope["type"] == "lifespan":  # nothing to start or stop: acknowledge both
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
        name, _, rest = scope["path"].lstrip("/").partition("/")
        app = apps.get(name)
        if app is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"no such endpoint"})
            return
        await app({**scope, "path": "/" + rest, "raw_path": ("/" + rest).encode()}, receive, send)

    return dispatch
