"""A deadline and a byte budget for the network I/O of the current thread.

httpx only knows per-read timeouts, so a server that sends one byte a second never times
out. A chat turn sets a deadline around each read of its stream (`io_deadline`), and the
network layer (`hfchat.net`) shortens every socket connect and read to what is left of it
(`io_timeout`): past the deadline the read fails with `DeadlineExceeded`, the stream
breaks, and the turn ends with what arrived.

Likewise a byte budget (`io_budget`): every byte a socket read returns is counted
(`count_read`), and past the budget the read fails with `ReplyTooLargeError`. A reply is
bounded in tokens and characters once it is parsed, but a server can send a single 63 MB
line, which would be read whole before anything parses it.

Thread-local, because the reads happen in whatever thread is iterating the stream; a
deadline set inside another only ever shortens it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hfchat.errors import ReplyTooLargeError

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


@dataclass
class Budget:
    """Bytes the network may still return in a block (`io_budget`), and how many it did."""

    limit: int
    used: int = 0


@contextmanager
def io_budget(limit: int | None) -> Iterator[Budget | None]:
    """Within the block, this thread's socket reads may return at most `limit` bytes in all;
    yields the Budget, whose `used` says how many they did. None: no budget."""
    outer = getattr(_local, "budget", None)
    budget = None if limit is None else Budget(limit)
    _local.budget = budget
    try:
        yield budget
    finally:
        if outer is not None and budget is not None:
            outer.used += budget.used
        _local.budget = outer


def count_read(size: int) -> None:
    """Count `size` bytes against the thread's budget; raises ReplyTooLargeError past it."""
    budget: Budget | None = getattr(_local, "budget", None)
    if budget is None:
        return
    budget.used += size
    if budget.used > budget.limit:
        raise ReplyTooLargeError(
            f"The server sent more than {budget.limit:,} bytes, more than hfchat accepts for this request.",
            "Lower max_new_tokens, or check the server: it may not be following the OpenAI chat-completion format.",
        )
