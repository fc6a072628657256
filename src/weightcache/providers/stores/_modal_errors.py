"""Which exceptions mean "Modal or the OS failed" (retry, or carry on) rather than "the code is wrong"."""

from __future__ import annotations

import contextlib

#: RuntimeError subclasses that are programming errors, never a Volume's failure.
PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (NotImplementedError, RecursionError)


def platform_errors() -> tuple[type[BaseException], ...]:
    """The errors a Volume or Dict call raises when Modal or the OS fails (not when code is wrong).

    ``RuntimeError`` is what ``Volume.commit``/``reload`` turn Modal's ConflictError and
    NotFoundError into (modal/volume.py); ``modal.exception.Error`` and grpclib's errors are
    what Modal's client raises after its own retries; ``OSError`` covers the filesystem and
    connections.
    """
    errors: list[type[BaseException]] = [RuntimeError, OSError]
    with contextlib.suppress(ImportError):
        import modal.exception

        errors.append(modal.exception.Error)
    with contextlib.suppress(ImportError):
        from grpclib.exceptions import GRPCError, StreamTerminatedError

        errors += [GRPCError, StreamTerminatedError]
    return tuple(errors)
