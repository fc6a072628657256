"""Catch a mount-path typo: ``ModalVolumeStore(volume, "/cahce")`` inside a Modal container.

Such a path is on the container's ephemeral disk: everything works, and every cold start
downloads again. Inside a running Modal Function (``modal.is_local()`` is false, see
modal/_runtime/execution_context.py) with a real ``modal.Volume``, the store's path must lie
on a mount other than the container's root filesystem. Modal serves Volumes from
``/__modal/volumes/<volume id>`` (the path the SDK's open-file annotation inspects in
modal/volume.py), so a path resolving below it is accepted too.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import VolumeNotMountedError

#: Where Modal serves mounted Volumes inside a container (modal/volume.py, ``_Volume.reload``).
MODAL_VOLUMES_DIR = "/__modal/volumes"


def check_volume_mounted(volume: object, path: Path, *, mountinfo: str = "/proc/self/mountinfo") -> None:
    """Raise :class:`VolumeNotMountedError` if ``path`` is not on a mounted Volume in a Modal container.

    Checked only for a real ``modal.Volume`` inside a running Modal Function; duck-typed
    volumes (test doubles) and code outside Modal are never checked.
    """
    try:
        import modal
    except ImportError:
        return
    if not isinstance(volume, modal.Volume) or modal.is_local():
        return
    real = os.path.realpath(path)
    if real == MODAL_VOLUMES_DIR or real.startswith(MODAL_VOLUMES_DIR + "/"):
        return
    if enclosing_mount(real, mount_points(mountinfo)) != "/":
        return
    raise VolumeNotMountedError(
        f"{path} is not where a Volume is mounted in this container, so entries would land on its "
        "ephemeral disk; pass the path given in volumes={...} of your @app.function or @app.cls"
    )


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    """The mount points listed in ``mountinfo`` (field 5, octal escapes decoded); ``{"/"}`` if unreadable."""
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return {"/"}
    points = {"/"}
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            points.add(fields[4].encode().decode("unicode_escape"))
    return points


def enclosing_mount(path: str, points: set[str]) -> str:
    """The deepest mount point that ``path`` (absolute, resolved) lies on or below."""
    best = "/"
    for point in points:
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best = point
    return best
