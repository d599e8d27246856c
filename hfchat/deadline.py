"""A deadline for the network I/O of the current thread.

httpx only knows per-read timeouts, so a server that sends one byte a second never times
out. A chat turn sets a deadline around each read of its stream (`io_deadline`), and the
network layer (`hfchat.net`) shortens every socket connect and read to what is left of it
(`io_timeout`): past the deadline the read fails with `DeadlineExceeded`, the stream
breaks, and the turn ends with what arrived.

Thread-local, because the reads happen in whatever thread is iterating the stream; a
deadline set inside another only ever shortens it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


class DeadlineExceeded(TimeoutError):
    """A socket operation was attempted, or would have waited, past the thread's deadline."""


def current() -> float | None:
    """The thread's deadline on the `time.monotonic()` clock, or None."""
    return getattr(_local, "deadline", None)


@contextmanager
def io_deadline(at: float | None) -> Iterator[None]:
    """Within the block, this thread's network I/O must finish by `at` (time.monotonic()).

    None leaves any outer deadline as it is; a nested deadline never extends an outer one.
    """
    outer = current()
    inner = at if outer is None else (outer if at is None else min(outer, at))
    _local.deadline = inner
    try:
        yield
    finally:
        _local.deadline = outer


def io_timeout(timeout: float | None) -> float | None:
    """The timeout a socket operation should use now: `timeout`, shortened to the time left
    before the thread's deadline; raises DeadlineExceeded when none is left."""
    deadline = current()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the turn's deadline passed while waiting for the server")
    return left if timeout is None else min(timeout, left)
