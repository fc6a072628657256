"""The conformance suite on a real Modal account: an ephemeral app, Volume and Dict.

``weightcache selftest --modal`` calls :func:`run_on_modal`. It creates an ephemeral Volume
and Dict (gone when the run ends), builds :func:`build_app` (two Functions, ``side_a`` and
``side_b``, so steps land in different containers) and runs
:func:`~weightcache.testing.conformance.run_suite` against them with ``app.run()``. The
containers get weightcache from this machine (``Image.add_local_python_source``) and its
dependencies from PyPI.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError, WeightCacheError
from .conformance import STEPS, Side, SuiteResult, run_suite

if TYPE_CHECKING:
    import modal

#: Where the selftest Functions mount the ephemeral Volume.
MOUNT = "/selftest"
APP_NAME = "weightcache-selftest"


def run_step(step: str, kwargs: dict[str, Any], volume: Any, leases: Any) -> dict[str, Any]:
    """Container side: run one conformance step on the mounted Volume and the Dict passed in."""
    return STEPS[step](Side(volume, Path(MOUNT), leases), **kwargs)


def requirements() -> list[str]:
    """weightcache's own runtime dependencies, as installed here (else from the checkout's pyproject)."""
    try:
        declared = metadata.requires("weightcache") or []
    except metadata.PackageNotFoundError:  # run from a checkout without installing it
        import tomllib  # Python 3.11+, where a checkout is run from in development

        pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
        declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [requirement for requirement in declared if "extra ==" not in requirement]


def build_app(volume: modal.Volume, leases: modal.Dict) -> tuple[modal.App, dict[str, modal.Function]]:
    """The selftest app: Functions ``side_a`` and ``side_b`` that run a step with ``volume`` mounted.

    ``leases`` is not used here: the driver passes it to each call, with the Volume.
    """
    import modal

    python = f"{sys.version_info.major}.{sys.version_info.minor}"  # serialized Functions need the same minor
    image = (
        modal.Image.debian_slim(python_version=python)
        .uv_pip_install(*requirements())
        .add_local_python_source("weightcache")
    )
    app = modal.App(APP_NAME)
    sides = {
        side: app.function(
            image=image, volumes={MOUNT: volume}, serialized=True, name=f"side_{side}", timeout=600
        )(run_step)
        for side in ("a", "b")
    }
    return app, sides


class ModalBackend:
    """The suite's backend on real Functions, Volume and Dict (see :class:`~.conformance.Backend`)."""

    def __init__(self, sides: dict[str, modal.Function], volume: modal.Volume, leases: modal.Dict) -> None:
        self.leases = leases
        self._sides = sides
        self._volume = volume
        self._pool = ThreadPoolExecutor(2)

    def call(self, side: str, step: str, **kwargs: Any) -> dict[str, Any]:
        """Run the step remotely in a container of ``side``."""
        return self._sides[side].remote(step, kwargs, self._volume, self.leases)

    def spawn(self, side: str, step: str, **kwargs: Any) -> Future[dict[str, Any]]:
        """Run the step remotely while the driver goes on."""
        return self._pool.submit(self.call, side, step, **kwargs)


def run_on_modal() -> SuiteResult:
    """Run the whole suite on the account of this machine's Modal token; everything made is ephemeral."""
    import modal

    with (
        modal_failures(),
        modal.Volume.ephemeral() as volume,
        modal.Dict.ephemeral() as leases,
    ):
        app, sides = build_app(volume, leases)
        with app.run():
            return run_suite(ModalBackend(sides, volume, leases))


@contextlib.contextmanager
def modal_failures() -> Iterator[None]:
    """Turn Modal's errors (no token, no network) into one-sentence :class:`StoreError`."""
    try:
        yield
    except WeightCacheError:
        raise
    except Exception as exc:
        from modal.exception import AuthError, Error

        if isinstance(exc, AuthError):
            raise StoreError(
                "Modal refused the selftest (no valid token); run `modal token new` or set "
                "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET"
            ) from exc
        if isinstance(exc, (Error, OSError)):
            raise StoreError(f"the Modal selftest could not run ({type(exc).__name__}: {exc})") from exc
        raise
