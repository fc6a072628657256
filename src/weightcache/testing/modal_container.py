"""Run a Modal app as its container would, without Modal: ``ModalContainer``.

Code that only works on the deploying machine (``Path(__file__).parents[1]``, paths into a
checkout, local weights) passes every test that imports the app from the checkout, and then
crashes in every container: there Modal mounts the entrypoint file at ``/root/app.py``. This
harness builds the container's filesystem from the real SDK objects (see
:mod:`._container_spec`), lays it out with the container's paths in a private mount namespace,
and runs the app there::

    with ModalContainer("examples/jaguar/app.py", "JaguarService", state_dir=tmp_path) as container:
        assert container.request("GET", "/info").status_code == 200
    # a second container on the same state_dir finds what the first committed to the Volume

Inside, ``modal.is_local()`` is false, the image's ``.env`` is set, each Volume mounted by the
target is a :class:`~weightcache.testing.FakeModalVolume` container at its mount path (a real
mount point) and ``modal.Dict.from_name`` gives a :class:`~weightcache.testing.FakeModalDict`.
The class's ``@modal.enter`` methods run (snap phase first), then its ``asgi_app`` or
``fastapi_endpoint`` answers :meth:`ModalContainer.request`. Needs Linux, root and
``unshare`` (tests skip otherwise: see :func:`available`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import WeightCacheError
from .fake_modal import FakeModalVolume


class ContainerStartError(WeightCacheError):
    """The simulated container failed (its app did not import, or an enter method raised)."""

    def __init__(self, phase: str, error_type: str, details: str) -> None:
        super().__init__(f"the container failed while {phase}: {error_type} (traceback in .details)")
        self.phase, self.error_type, self.details = phase, error_type, details


@dataclass
class ContainerResponse:
    """What the container's web endpoint answered."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content)


def available() -> str | None:
    """``None`` if containers can be simulated here, else why not (for ``pytest.skip``)."""
    if not sys.platform.startswith("linux"):
        return "the container simulation needs Linux mount namespaces"
    if os.geteuid() != 0:
        return "the container simulation needs root (mount namespaces and chroot)"
    if shutil.which("unshare") is None:
        return "the container simulation needs util-linux's unshare"
    return None


@dataclass
class ModalContainer:
    """One simulated container of ``target`` (a class or function name) in the app ``app``.

    ``app`` is what ``modal deploy`` takes: a file path, or ``-m package.module``; it is
    imported with ``cwd`` (default: the current directory) as the working directory, as on the
    deploying machine. Volumes and Dicts live under ``state_dir``, so containers started one
    after another on one ``state_dir`` share them. ``env`` is added to the deploying side's
    environment (the container gets only the image's).
    """

    app: str
    target: str
    state_dir: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[str] | None = field(default=None, init=False, repr=False)
    _scratch: Path | None = field(default=None, init=False, repr=False)
    spec: dict[str, Any] = field(default_factory=dict, init=False)

    def volume(self, name: str) -> FakeModalVolume:
        """The Volume ``name`` as a laptop sees it (its committed state)."""
        return FakeModalVolume(self.state_dir / "volumes" / name, name=name)

    def start(self) -> ModalContainer:
        """Build the container and start the app; raise :class:`ContainerStartError` if it fails."""
        cwd = self.cwd or Path.cwd()
        described = subprocess.run(
            [sys.executable, "-m", "weightcache.testing._container_spec", self.app, self.target],
            cwd=cwd,
            env={**os.environ, **self.env, "PYTHONPATH": _pythonpath(cwd)},
            capture_output=True,
            text=True,
        )
        if described.returncode != 0:
            raise ContainerStartError(
                "importing the app where it is deployed", "ImportError", described.stderr
            )
        self.spec = json.loads(described.stdout)
        (self.state_dir / "containers").mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(dir=self.state_dir / "containers"))
        top_levels = {
            Path(remote).parts[2] for _, remote in self.spec["files"] if remote.startswith("/root/")
        }
        spec = {
            **self.spec,
            "target": self.target,
            "newroot": str(self._scratch / "root"),
            "dicts_dir": str(self.state_dir / "dicts"),
            "volume_roots": {name: str(self.volume(name).root) for name in self.spec["volumes"].values()},
            "forget": sorted({Path(name).stem for name in top_levels} | {"weightcache"}),
        }
        (self.state_dir / "dicts").mkdir(exist_ok=True)
        spec_file = self._scratch / "spec.json"
        spec_file.write_text(json.dumps(spec))
        self._process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                sys.executable,
                "-m",
                "weightcache.testing._container_child",
                str(spec_file),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": _pythonpath(Path(__file__).resolve().parents[2])},
        )
        self._expect("ready")
        return self

    def request(
        self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> ContainerResponse:
        """Send one HTTP request to the container's web endpoint."""
        event = self._exchange(
            {"method": method, "path": path, "json": json_body, "headers": headers}, "response"
        )
        return ContainerResponse(event["status"], event["headers"], base64.b64decode(event["body"]))

    def stop(self) -> None:
        """End the container as Modal does (a final commit of every Volume), and clean up."""
        if self._process is None:
            return
        try:
            if self._process.poll() is None:
                self._exchange({"exit": True}, "exited")
        finally:
            self._process.kill() if self._process.poll() is None else None
            self._process.wait()
            self._process = None
            if self._scratch is not None:  # its mounts died with the namespace: plain directories here
                shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> ModalContainer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _exchange(self, message: dict[str, Any], expected: str) -> dict[str, Any]:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()
        return self._expect(expected)

    def _expect(self, expected: str) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            stderr = self._process.stderr.read() if self._process.stderr else ""
            self._cleanup_failed()
            raise ContainerStartError("starting", "ProcessExited", stderr)
        event = json.loads(line)
        if event["event"] == "error":
            self._cleanup_failed()
            raise ContainerStartError(event["phase"], event["type"], event["traceback"])
        if event["event"] != expected:
            raise RuntimeError(f"the container answered {event['event']!r}, expected {expected!r}")
        return event

    def _cleanup_failed(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _pythonpath(first: Path) -> str:
    """``first`` ahead of the caller's PYTHONPATH, so the harness and the app import as here."""
    return os.pathsep.join([str(first), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
