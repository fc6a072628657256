"""Timeouts and a deadline for what weightcache asks the Hub (resolving a revision, listing files).

huggingface_hub's shared HTTP client has no timeout (``utils/_http.py``, ``default_client_factory``:
``timeout=None``), and ``list_repo_tree`` passes none (``hf_api.py``), retrying timeouts five times with
back-off (``utils/_pagination.py`` → ``http_backoff``). A Hub or proxy that accepts the connection and
never answers would hold ``ensure()`` (and every process waiting on its populate lock) forever.

:func:`hub_deadline` bounds a block: a request hook on the shared client gives each request made in
the block a connect and read timeout (the smaller of the request timeout and what is left of the
deadline), and refuses to start a request once the deadline has passed. Requests made outside such
a block, by weightcache or the application, are left as they are.

Known limit: after a refused connection huggingface_hub replaces its shared client
(``close_session`` in ``http_backoff``); the retries left in that step run on the new client,
unbounded, until the next block installs the hook on it again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import httpx2
from huggingface_hub.utils import get_session


class HubDeadlineExceeded(Exception):
    """The deadline of a :func:`hub_deadline` block passed before a request could start."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True)
class _Budget:
    ends_at: float  # time.monotonic()
    request_timeout: float
    deadline: float


_BUDGET: ContextVar[_Budget | None] = ContextVar("weightcache_hub_budget", default=None)


@contextlib.contextmanager
def hub_deadline(request_timeout: float, deadline: float) -> Iterator[None]:
    """Bound every Hub request made in this block (in this thread) as the module docstring says."""
    session = get_session()
    hooks = session.event_hooks
    if _bound_request not in hooks["request"]:
        session.event_hooks = {**hooks, "request": [*hooks["request"], _bound_request]}
    token = _BUDGET.set(_Budget(time.monotonic() + deadline, request_timeout, deadline))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _bound_request(request: httpx2.Request) -> None:
    """httpx2 request hook: cap the request's timeouts by the block's budget (none outside a block)."""
    budget = _BUDGET.get()
    if budget is None:
        return
    left = budget.ends_at - time.monotonic()
    if left <= 0:
        raise HubDeadlineExceeded(budget.deadline)
    cap = min(budget.request_timeout, left)
    timeouts = dict(request.extensions.get("timeout") or {})
    for phase in ("connect", "read", "write", "pool"):
        current = timeouts.get(phase)
        timeouts[phase] = cap if current is None else min(current, cap)
    request.extensions["timeout"] = timeouts
