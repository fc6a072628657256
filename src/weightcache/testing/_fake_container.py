"""``FakeVolumeContainer``: the Volume as one simulated Modal container sees it.

Each behaviour follows modal 1.6's own code, cited where it is modelled:

- ``commit()`` sends the commit and then reloads, unless the server answered ``skip_reload``
  (``_Volume.commit`` in modal/volume.py). A ConflictError or NotFoundError from either step
  becomes a :class:`RuntimeError` with the server's message, so a commit can raise *after*
  its data persisted: the reload step refuses while files on the Volume are open.
- ``reload()`` raises :class:`RuntimeError` with Modal's message while files are open, annotated
  by the SDK's own ``_open_files_error_annotation`` (``_Volume.reload``).
- Background commits every few seconds (mounts are made with ``allow_background_commits=True``,
  ``_volume_to_mount_proto``) and a final commit at exit after ``os.sync()``
  (``TaskLifecycleManager.volume_commit`` in modal/_runtime/task_lifecycle_manager.py): both
  commit without reloading, and log their failures instead of raising.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .._transport.fsutil import remove_tree
from ._volume_state import InodeLimitError, View, empty_view, is_mount_point

if TYPE_CHECKING:
    from .fake_modal import FakeModalVolume

logger = logging.getLogger(__name__)

#: Modal's message when a reload meets open files (modal/volume.py, ``_Volume.reload``).
OPEN_FILES_MESSAGE = "there are open files preventing the operation"


class FakeVolumeContainer:
    """The Volume as one simulated container sees it: what ``modal.Volume`` is inside a container.

    Pass it where code expects the Volume (``ModalVolumeStore(container, container.mount_path)``).
    Use it as a context manager to :meth:`exit` at the end of the block. ``skip_reload`` models
    a server that answers a commit with ``skip_reload`` (the commit then does not reload);
    ``background_commit_seconds`` starts Modal's periodic background commits.
    """

    def __init__(
        self,
        volume: FakeModalVolume,
        container_id: str,
        view: View,
        *,
        skip_reload: bool = False,
        background_commit_seconds: float | None = None,
    ) -> None:
        #: The Volume's name, like ``modal.Volume.name``.
        self.name = volume.name
        self.container_id = container_id
        self.skip_reload = skip_reload
        self._view = view
        self._lock = threading.Lock()  # a heartbeat thread may commit while the main thread works
        self._failures_left = 0
        self._ended = False
        self._stop = threading.Event()
        self._background: threading.Thread | None = None
        with self._lock:
            view.sync()
        if background_commit_seconds is not None:
            self._background = threading.Thread(
                target=self._commit_in_background,
                args=(background_commit_seconds,),
                name=f"fake-volume-background-commit-{container_id}",
                daemon=True,
            )
            self._background.start()

    @property
    def mount_path(self) -> Path:
        """The directory this container sees the Volume at."""
        return self._view.mount

    def __repr__(self) -> str:
        return f"FakeVolumeContainer({self.container_id!r}, mount_path={str(self.mount_path)!r})"

    def commit(self) -> None:
        """Persist this container's changes, then reload (unless ``skip_reload``), as Modal does.

        When the reload step is refused because files are open, the commit has persisted and
        :class:`RuntimeError` is raised all the same, with the server's message unannotated
        (the SDK annotates only in ``reload()``).
        """
        with self._lock:
            self._check_running()
            self._persist()
            if self.skip_reload:
                return
            if self._open_files()[0]:
                raise RuntimeError(OPEN_FILES_MESSAGE)
            self._view.sync()

    def reload(self) -> None:
        """Commit this container's changes, then bring in every other container's commits.

        Modal says a reload *may* commit uncommitted changes; the fake always does, so a
        reload never loses what another thread of this container is writing. Raises
        :class:`RuntimeError` with Modal's message while a process has a file of this view
        open (or its working directory inside it), or this process has one mapped.
        """
        with self._lock:
            self._check_running()
            blocked, annotation = self._open_files()
            if blocked:
                raise RuntimeError(
                    f"{OPEN_FILES_MESSAGE}: {annotation}" if annotation else OPEN_FILES_MESSAGE
                )
            self._persist()
            self._view.sync()

    def fail_next_commits(self, count: int) -> None:
        """Make the next ``count`` commits (background and exit ones too) fail before persisting anything."""
        self._failures_left = count

    def exit(self) -> None:
        """End the container the way Modal does: ``os.sync()``, a final commit, then the view is gone.

        As in Modal, a failure of that commit is logged, not raised.
        """
        self._stop_background()
        os.sync()
        with self._lock:
            if not self._ended:
                self._commit_quietly("the final commit")
        self._end()

    def crash(self) -> None:
        """End the container abruptly (killed, preempted): uncommitted writes are lost."""
        self._stop_background()
        self._end()

    def __enter__(self) -> FakeVolumeContainer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._ended:
            self.exit()

    def _persist(self) -> None:
        if self._failures_left:
            self._failures_left -= 1
            raise RuntimeError("commit failed (simulated by FakeVolumeContainer.fail_next_commits)")
        try:
            self._view.commit()
        except InodeLimitError as exc:
            raise RuntimeError(str(exc)) from None

    def _commit_in_background(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                if self._ended:
                    return
                self._commit_quietly("a background commit")

    def _commit_quietly(self, what: str) -> None:
        try:
            self._persist()
        except RuntimeError as exc:
            logger.error("%s of %s failed: %s", what, self.container_id, exc)

    def _stop_background(self) -> None:
        self._stop.set()
        if self._background is not None and self._background is not threading.current_thread():
            self._background.join()

    def _open_files(self) -> tuple[bool, str | None]:
        return open_files(self.mount_path)

    def _end(self) -> None:
        with self._lock:
            self._ended = True
            if is_mount_point(self.mount_path):
                empty_view(self.mount_path)
            else:
                remove_tree(self.mount_path)

    def _check_running(self) -> None:
        if self._ended:
            raise RuntimeError(f"container {self.container_id} has ended; start another with container()")


def open_files(mount: Path) -> tuple[bool, str | None]:
    """Whether the view at ``mount`` is held open, and Modal's annotation saying how.

    The annotation comes from the SDK's own helper (``modal.volume._open_files_error_annotation``),
    which looks at every process's descriptors and working directory; a file only
    memory-mapped by this process (an mmap'd checkpoint) blocks too, unannotated. Needs
    ``/proc`` (Linux); elsewhere nothing is found.
    """
    from modal.volume import _open_files_error_annotation

    root = os.path.realpath(mount)
    if not os.path.isdir("/proc/self/fd"):
        return False, None
    annotation = _open_files_error_annotation(root)
    if annotation is not None:
        return True, annotation
    with contextlib.suppress(OSError), open("/proc/self/maps") as maps:
        return any(_inside(line.split(maxsplit=5)[-1].strip(), root) for line in maps if "/" in line), None
    return False, None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)
