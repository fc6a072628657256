"""Run a Modal app as its container would, without Modal: ``ModalContainer``.

Code that only works on the deploying machine (``Path(__file__).parents[1]``, paths into a
checkout, local weights) passes every test that imports the app from the checkout, and then
crashes in every container: there Modal mounts the entrypoint file at ``/root/app.py``. This
harness builds the container's filesystem from the real SDK objects (see
:mod:`._container_spec`), lays it out with the container's paths in a private mount namespace,
and runs the app there::

    with ModalContainer("examples/jaguar/app.py", "ShuttleJaguarModel", state_dir=tmp_path) as container:
        assert container.request("GET", "/", endpoint="info").status_code == 200
    # a second container on the same state_dir finds what the first committed to the Volume

Inside, ``modal.is_local()`` is false, the image's ``.env`` is set, each Volume mounted by the
target is a :class:`~weightcache.testing.FakeModalVolume` container at its mount path (a real
mount point) and ``modal.Dict.from_name`` gives a :class:`~weightcache.testing.FakeModalDict`.
The class's ``@modal.enter`` methods run (snap phase first), then each of its ``asgi_app``
and ``fastapi_endpoint`` methods answers :meth:`ModalContainer.request` (pick one with
``endpoint=``). What the app prints is in :meth:`ModalContainer.logs`. Needs Linux, root and
``unshare`` (tests skip otherwise: see :func:`available`).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import InvalidArgumentError, WeightCacheError
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
    if any(importlib.util.find_spec(name) is None for name in ("starlette", "httpx")):
        return "the container simulation serves web endpoints with starlette and httpx: install '.[examples]'"
    return None


@dataclass
class ModalContainer:
    """One simulated container of ``target`` (a class or function name) in the app ``app``.

    ``app`` is what ``modal deploy`` takes: a file path, or ``-m package.module``; it is
    imported with ``cwd`` (default: the current directory) as the working directory, as on the
    deploying machine. Volumes and Dicts live under ``state_dir``, so containers started one
    after another on one ``state_dir`` share them. ``env`` is added to the deploying side's
    environment; the container gets only the image's ``.env`` and ``secret_env`` (what a
    ``modal.Secret`` would give it).

    Once started: ``endpoints`` lists the web methods in the SDK's order, ``entered`` the
    ``@modal.enter`` methods run in each phase (``pre_snapshot``, ``post_snapshot``), and
    ``open_at_snapshot`` the Volume files the process held open or mapped when the
    ``snap=True`` methods had returned (a memory snapshot should hold none).
    """

    app: str
    target: str
    state_dir: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[str] | None = field(default=None, init=False, repr=False)
    _scratch: Path | None = field(default=None, init=False, repr=False)
    _log: Path | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    spec: dict[str, Any] = field(default_factory=dict, init=False)
    endpoints: list[str] = field(default_factory=list, init=False)
    entered: dict[str, list[str]] = field(default_factory=dict, init=False)
    open_at_snapshot: list[str] = field(default_factory=list, init=False)

    def volume(self, name: str) -> FakeModalVolume:
        """The Volume ``name`` as a laptop sees it (its committed state)."""
        return FakeModalVolume(self.state_dir / "volumes" / name, name=name)

    def start(self) -> ModalContainer:
        """Build the container and start the app; raise :class:`ContainerStartError` if it fails."""
        if self._process is not None:
            raise InvalidArgumentError(
                "this container is already running: start() it once, or use it in a with block"
            )
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
        # A file, not a pipe: a model's import and load can print more than a pipe holds.
        self._log = self._scratch.with_suffix(".log")
        with open(self._log, "w") as log:
            self._process = self._popen(spec_file, log)
        ready = self._expect("ready")
        self.endpoints, self.entered = ready["endpoints"], ready["entered"]
        self.open_at_snapshot = ready["open_at_snapshot"]
        return self

    def logs(self) -> str:
        """What the container printed so far (its stdout and stderr, as Modal's logs show them)."""
        return self._log.read_text(errors="replace") if self._log is not None else ""

    def _popen(self, spec_file: Path, log: Any) -> subprocess.Popen[str]:
        # The image's environment replaces this process's inside (see _container_child).
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/root",  # as in a Modal container
            "PYTHONPATH": _pythonpath(Path(__file__).resolve().parents[2]),
            **self.secret_env,
        }
        return subprocess.Popen(
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
            stderr=log,
            text=True,
            env=env,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str | None = None,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> ContainerResponse:
        """Send one HTTP request to the web method ``endpoint`` (default: the first one)."""
        if endpoint is not None and endpoint not in self.endpoints:
            raise InvalidArgumentError(
                f"{self.target} has no web endpoint {endpoint!r}; pick one of {', '.join(self.endpoints)}"
            )
        message = {
            "method": method,
            "path": path,
            "endpoint": endpoint,
            "params": params,
            "json": json_body,
            "headers": headers,
        }
        event = self._exchange(message, "response")
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
        with self._lock:  # one request at a time on the pipe, whichever thread asks
            self._process.stdin.write(json.dumps(message) + "\n")
            self._process.stdin.flush()
            return self._expect(expected)

    def _expect(self, expected: str) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            self._cleanup_failed()
            raise ContainerStartError("starting", "ProcessExited", self.logs())
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
