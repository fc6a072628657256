"""The inside of a simulated Modal container (started by :mod:`weightcache.testing.modal_container`).

Run as root in a private mount namespace (``unshare --mount --propagation private``): it builds
the container's filesystem in a scratch root (the host's top-level directories bind-mounted,
``/root`` and every path the image adds its own, each Volume's mount path a bind mount of a
FakeModalVolume container's view), ``chroot``s into it, imports the app module from ``/root``
with ``modal.is_local()`` false, runs the class's ``@modal.enter`` methods (snap phase first)
and serves each of its web endpoints through Starlette's test client, one JSON request per
line on stdin (naming its endpoint), one JSON event per line on the original stdout; what the
app prints goes to stderr.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path, PurePosixPath
from typing import IO, Any

import modal
from modal._partial_function import (
    _find_callables_for_obj,
    _find_partial_methods_for_user_cls,
    _PartialFunctionFlags,
)
from modal._utils.async_utils import synchronizer
from modal_proto import api_pb2
from starlette.testclient import TestClient

from weightcache.testing._container_spec import service_function
from weightcache.testing.fake_dict import FakeModalDict
from weightcache.testing.fake_modal import FakeModalVolume


def build_root(spec: dict[str, Any]) -> Path:
    """Lay the container's filesystem out under ``spec["newroot"]``; return it.

    The host's tree is bind-mounted in, except ``/root``, every path the image adds and every
    Volume mount path, which are the container's own (the interpreter stays reachable).
    """
    newroot = Path(spec["newroot"])
    wanted = [PurePosixPath("root")]
    wanted += [PurePosixPath(remote).relative_to("/") for _, remote in spec["files"]]
    wanted += [PurePosixPath(mount).relative_to("/") for mount in spec["volumes"]]
    _overlay(Path("/"), newroot, wanted)
    for prefix in sorted({sys.base_prefix, sys.prefix}):  # the interpreter may live under /root (pyenv)
        if prefix.startswith("/root/"):
            (newroot / prefix.lstrip("/")).mkdir(parents=True, exist_ok=True)
            _bind(Path(prefix), newroot / prefix.lstrip("/"))
    for local, remote in spec["files"]:
        target = newroot / remote.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local, target)  # one deployment: the same files, times included, in every container
    for mount in spec["volumes"]:
        view = newroot / mount.lstrip("/")
        view.mkdir(parents=True, exist_ok=True)
        _bind(view, view)  # a mount point, as a Volume is on Modal
    return newroot


def _overlay(host: Path, new: Path, wanted: list[PurePosixPath]) -> None:
    """Mirror ``host`` at ``new`` with bind mounts, leaving out the subtrees ``wanted`` names."""
    new.mkdir(parents=True, exist_ok=True)
    for entry in sorted(os.listdir(host)):
        source, target = host / entry, new / entry
        below = [PurePosixPath(*path.parts[1:]) for path in wanted if path.parts[0] == entry]
        if below:
            if all(path.parts for path in below) and source.is_dir() and not source.is_symlink():
                _overlay(source, target, below)  # only some of it is the container's own
            continue
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        elif source.is_dir():
            target.mkdir()
            _bind(source, target)
        elif source.is_file():
            target.touch()
            _bind(source, target)


def _bind(source: Path, target: Path) -> None:
    subprocess.run(["mount", "--rbind", str(source), str(target)], check=True)


def enter_container(spec: dict[str, Any]) -> dict[str, Any]:
    """chroot into the built root and make the process look like a running Modal Function."""
    for name in [name for name in sys.modules if name.split(".")[0] in spec["forget"]]:
        del sys.modules[name]  # the app imports these from /root, as in the container
    os.chroot(spec["newroot"])
    os.chdir("/root")
    os.environ.update(spec["env"])
    sys.path[:] = ["/root"] + [
        path for path in sys.path if path.endswith(("site-packages", ".zip")) or "lib/python" in path
    ]
    modal.is_local = lambda: False  # what the app sees inside a running Function
    dicts = spec["dicts_dir"]
    modal.Dict.from_name = staticmethod(  # type: ignore[method-assign]
        lambda name, **_: FakeModalDict(Path(dicts) / f"{name}.dict", name=name)
    )
    containers = {
        mount: FakeModalVolume(spec["volume_roots"][name], name=name).container(mount_path=mount)
        for mount, name in spec["volumes"].items()
    }
    by_name = {container.name: container for container in containers.values()}
    modal.Volume.commit = lambda self: by_name[self.name].commit()  # type: ignore[method-assign]
    modal.Volume.reload = lambda self: by_name[self.name].reload()  # type: ignore[method-assign]
    return containers


def start_target(module: Any, name: str, mounts: list[str]) -> dict[str, Any]:
    """Run the target's ``@modal.enter`` methods and build each web endpoint's ASGI app.

    As modal/_runtime/user_code_imports.py does: the ``snap=True`` methods
    (``ENTER_PRE_SNAPSHOT``), the snapshot point, then the ``snap=False`` ones, each phase in
    definition order; then one app per web method (``_find_partial_methods_for_user_cls``).
    Returns ``apps`` (method name -> ASGI app), ``entered`` (phase -> method names) and
    ``open_at_snapshot`` (the Volume files held open or mapped at the snapshot point).
    """
    target = getattr(module, name)
    inner = synchronizer._translate_in(target)
    user_cls = getattr(inner, "_user_cls", None)
    if user_cls is None:  # a function with a web endpoint
        function = service_function(target)
        app = _web_app(function._raw_f, function._webhook_config)
        return {"apps": {name: app}, "entered": {}, "open_at_snapshot": []}
    instance = user_cls()
    entered: dict[str, list[str]] = {}
    open_at_snapshot: list[str] = []
    for phase, flag in (
        ("pre_snapshot", _PartialFunctionFlags.ENTER_PRE_SNAPSHOT),
        ("post_snapshot", _PartialFunctionFlags.ENTER_POST_SNAPSHOT),
    ):
        methods = _find_callables_for_obj(instance, flag)
        for method in methods.values():
            method()
        entered[phase] = list(methods)
        if phase == "pre_snapshot" and methods:
            open_at_snapshot = _open_files_under(mounts)
    web = _find_partial_methods_for_user_cls(user_cls, _PartialFunctionFlags.WEB_INTERFACE)
    apps = {
        method: _web_app(getattr(instance, method).__func__.__get__(instance), partial.params.webhook_config)
        for method, partial in web.items()
    }
    return {"apps": apps, "entered": entered, "open_at_snapshot": open_at_snapshot}


def _open_files_under(mounts: list[str]) -> list[str]:
    """The files under ``mounts`` this process has open (``/proc/self/fd``) or mapped (``maps``)."""
    held: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            held.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # closed since it was listed
            continue
    with open("/proc/self/maps") as maps:
        held.update(
            fields[5].strip() for fields in (line.split(maxsplit=5) for line in maps) if len(fields) == 6
        )
    return sorted(path for path in held for mount in mounts if path.startswith(mount.rstrip("/") + "/"))


def _web_app(function: Any, config: Any) -> Any:
    if config.type == api_pb2.WEBHOOK_TYPE_ASGI_APP:
        return function()
    if config.type == api_pb2.WEBHOOK_TYPE_FUNCTION:
        from modal._runtime.asgi import magic_fastapi_app  # how Modal serves a fastapi_endpoint

        return magic_fastapi_app(function, config.method, config.web_endpoint_docs)
    raise NotImplementedError(
        f"the container simulation serves asgi_app and fastapi_endpoint, not {config.type}"
    )


def serve(apps: dict[str, Any], events: IO[str], started: dict[str, Any]) -> None:
    """Answer one JSON request per stdin line, each to the web endpoint it names, until ``{"exit": true}``."""
    with contextlib.ExitStack() as stack:
        clients = {name: stack.enter_context(TestClient(app)) for name, app in apps.items()}
        _send(
            events,
            {
                "event": "ready",
                "endpoints": list(clients),
                "entered": started["entered"],
                "open_at_snapshot": started["open_at_snapshot"],
            },
        )
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("exit"):
                return
            client = clients[request.get("endpoint") or next(iter(clients))]
            response = client.request(
                request["method"],
                request["path"],
                headers=request.get("headers"),
                json=request.get("json"),
                params=request.get("params"),
            )
            _send(
                events,
                {
                    "event": "response",
                    "status": response.status_code,
                    "headers": dict(response.headers),
                    "body": base64.b64encode(response.content).decode(),
                },
            )


def _send(events: IO[str], event: dict[str, Any]) -> None:
    events.write(json.dumps(event) + "\n")
    events.flush()


def main() -> None:
    """Build, enter, start, serve; report any failure as one ``error`` event naming its phase."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    events = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the app's prints go to stderr; stdout carries only events
    phase = "building the container filesystem"
    try:
        build_root(spec)
        phase = "entering the container"
        containers = enter_container(spec)
        phase = "importing the app"
        module = importlib.import_module(spec["module"])
        phase = "running @modal.enter methods"
        started = start_target(module, spec["target"], list(spec["volumes"]))
        phase = "serving"
        serve(started["apps"], events, started)
        phase = "exiting"
        for container in containers.values():
            container.exit()  # Modal commits every Volume when the container exits
        _send(events, {"event": "exited"})
    except BaseException as exc:  # report it to the parent, whatever it is
        _send(
            events,
            {
                "event": "error",
                "phase": phase,
                "type": type(exc).__name__,
                "traceback": traceback.format_exc(),
            },
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
