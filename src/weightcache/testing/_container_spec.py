"""What a Modal container of an app holds, computed from the real SDK objects where it is deployed.

``python -m weightcache.testing._container_spec APP TARGET`` imports the app as ``modal deploy``
would (a file with the working directory on ``sys.path``, as modal/cli/import_refs.py does; or
``-m package.module``) and prints one JSON document:

- ``files``: (local path, container path) for the entrypoint mount
  (``FunctionSourceInfo.get_entrypoint_mount`` in modal/_utils/function_utils.py: a file is
  mounted at ``/root/<name>.py``, a package under ``/root/<top package>``) and for each
  ``add_local_python_source``/``add_local_dir``/``add_local_file`` layer of the image (the
  image's deferred mounts, or with ``copy=True`` the mount a ``COPY`` layer builds from:
  ``_Image._add_mount_layer_or_copy`` in modal/_image.py), each as the SDK's own
  ``_MountEntry.get_files_to_upload`` lists it;
- ``env``: the variables set by ``Image.env`` (its ``ENV`` commands, from the SDK's own
  Dockerfile function);
- ``module``: the module name the container imports; ``volumes``: mount path -> Volume name.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import shlex
import sys
from pathlib import PurePosixPath
from typing import Any

BUILDER_VERSION = "2025.06"  # an image builder version the SDK accepts; these layers do not depend on it


def load_app_module(app_ref: str) -> Any:
    """Import ``path/app.py`` (cwd on ``sys.path``) or ``-m package.module`` as ``modal deploy`` does."""
    sys.path.insert(0, os.getcwd())
    if app_ref.startswith("-m "):
        return importlib.import_module(app_ref[3:].strip())
    path = os.path.abspath(app_ref)
    name = inspect.getmodulename(path) or "app"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def service_function(target: Any) -> Any:
    """The SDK's ``_Function`` behind a ``modal.Cls`` (its service function) or a ``modal.Function``."""
    from modal._utils.async_utils import synchronizer

    inner = synchronizer._translate_in(target)
    return getattr(inner, "_class_service_function", None) or inner


def describe(app_ref: str, target_name: str) -> dict[str, Any]:
    """The container's files, env, module and Volumes for ``target_name`` in the app ``app_ref``."""
    module = load_app_module(app_ref)
    function = service_function(getattr(module, target_name))
    source = function._source_info
    files: list[tuple[str, str]] = []
    for mount in source.get_entrypoint_mount().values():
        files += _mount_files(mount)
    image = function._spec.image
    env: dict[str, str] = {}
    for layer in _image_chain(image):
        env.update(_env_of(layer))
        files += _copied_files(layer)
        if getattr(layer, "_rep", "") == "Image(local files)":
            files += [item for dep in layer._deps() if _is_mount(dep) for item in _mount_files(dep)]
    return {
        "files": files,
        "env": env,
        "module": source.module_name,
        "volumes": {str(path): volume.name for path, volume in function._spec.volumes.items()},
    }


def _is_mount(obj: Any) -> bool:
    from modal.mount import _Mount

    return isinstance(obj, _Mount)


def _mount_files(mount: Any) -> list[tuple[str, str]]:
    return [
        (str(local), str(remote)) for entry in mount.entries for local, remote in entry.get_files_to_upload()
    ]


def _image_chain(image: Any) -> list[Any]:
    """The image and its bases, base first (an image's ``_deps`` lists its bases, then its mount)."""
    from modal._image import _Image

    if image is None:
        return []
    chain: list[Any] = []
    for dep in image._deps():
        if isinstance(dep, _Image):
            chain += _image_chain(dep)
    return [*chain, image]


def _copied_files(image: Any) -> list[tuple[str, str]]:
    """The files an ``add_local_*(..., copy=True)`` layer bakes in.

    That layer is ``_Image._copy_mount`` (modal/_image.py): a Dockerfile ``COPY . <dest>`` whose
    build context is the mount its ``context_mount_function`` returns.
    """
    nonlocals = _load_nonlocals(image)
    context_mount_function = nonlocals.get("context_mount_function")
    dockerfile_function = nonlocals.get("dockerfile_function")
    if context_mount_function is None or dockerfile_function is None:
        return []
    try:
        mount = context_mount_function(BUILDER_VERSION)
    except TypeError:  # modal < 1.6.4 builds this layer's context without a builder version
        mount = context_mount_function()
    files = []
    for command in dockerfile_function(BUILDER_VERSION).commands:
        if command.startswith("COPY . "):
            dest = PurePosixPath(command.removeprefix("COPY . "))
            files += [(local, str(dest / remote.lstrip("/"))) for local, remote in _mount_files(mount)]
    return files


def _load_nonlocals(image: Any) -> dict[str, Any]:
    """The variables an image layer's ``_load`` closes over (how the SDK keeps a layer's recipe)."""
    load = getattr(image, "_load", None)
    return {} if load is None else dict(inspect.getclosurevars(load).nonlocals)


def _env_of(image: Any) -> dict[str, str]:
    """What ``Image.env`` set on this layer: the ``ENV`` commands of its own Dockerfile function."""
    dockerfile_function = _load_nonlocals(image).get("dockerfile_function")
    if dockerfile_function is None or not dockerfile_function.__qualname__.startswith("_Image.env."):
        return {}
    env = {}
    for command in dockerfile_function(BUILDER_VERSION).commands:
        if command.startswith("ENV "):
            key, _, value = command[4:].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


if __name__ == "__main__":
    print(json.dumps(describe(sys.argv[1], sys.argv[2])))
