"""Waiting for an OpenStack resource: a deadline, backoff and a progress callback, riding over the
transient errors real clouds answer while an operation starts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from container_infra.cloud.errors import CloudError, is_transient


class WaitTimeout(CloudError):
    """The deadline passed before the resource was done."""


def wait_for(
    fetch: Callable[[], Any],
    is_done: Callable[[Any], bool],
    is_failed: Callable[[Any], bool | str] = lambda _: False,
    timeout: float = 1800,
    poll_interval: float = 5.0,
    progress: Callable[[Any], None] | None = None,
    transient: Callable[[BaseException], bool] | tuple[type[BaseException], ...] = is_transient,
    what: str = "the resource",
    first_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Call ``fetch()`` until ``is_done(result)``; return the last result.

    ``is_failed(result)`` true (or a non-empty string, used as the reason) raises CloudError.
    Exceptions for which ``transient`` holds (a predicate, or a tuple of exception classes) are
    ridden over until the deadline; others propagate.  Delays grow from ``first_delay`` by 1.5x and
    are capped at ``poll_interval``.  ``progress(result)`` is called after each successful fetch.
    """
    deadline = clock() + timeout
    delay = min(first_delay, poll_interval) if poll_interval > 0 else 0
    last_error: BaseException | None = None
    last: Any = None
    while True:
        try:
            last = fetch()
            last_error = None
        except Exception as exc:
            is_ok = transient(exc) if callable(transient) and not isinstance(transient, tuple) \
                else isinstance(exc, transient)
            if not is_ok:
                raise
            last_error = exc
        else:
            if progress is not None:
                progress(last)
            failed = is_failed(last)
            if failed:
                reason = failed if isinstance(failed, str) else "it reported a failure"
                raise CloudError(f"waiting for {what} failed: {reason}")
            if is_done(last):
                return last
        now = clock()
        if now >= deadline:
            if last_error is not None:
                raise WaitTimeout(
                    f"waiting for {what} failed: still erroring after {timeout:g} s "
                    f"({type(last_error).__name__}: {str(last_error)[:200]}); check the cloud and run again")
            raise WaitTimeout(
                f"waiting for {what} failed: not done after {timeout:g} s; raise timeout or check the "
                "resource in the cloud, then run again (the run converges from where it is)")
        sleep(max(0.0, min(delay, deadline - now)))
        delay = min(max(delay * 1.5, 0.1), poll_interval) if poll_interval > 0 else 0
