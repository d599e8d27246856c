"""First come, first served turns on a device, for local generation.

A CPU or one GPU runs one generation no faster by running two, so local generations take
turns per device. `threading.Lock` hands a released lock to whichever waiter the OS wakes
first, so under load one visitor can wait while later ones go ahead; `FairQueue` grants
turns strictly in arrival order. A waiter that gives up (Stop) leaves the queue at once
instead of holding its place until its turn.

Remote backends never queue here: their requests run in parallel, up to the app's
concurrency limit (see `hfchat/cli.py`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

DEFAULT_LOCAL_SLOTS = 1
"""Local generations at once per device."""


@dataclass(eq=False)
class Ticket:
    """One place in a queue. `wait()` blocks until it is this ticket's turn."""

    queue: FairQueue
    _granted: threading.Event = field(default_factory=threading.Event)
    state: str = "waiting"  # waiting -> holding -> done, or waiting -> withdrawn
    queued_at: float = field(default_factory=time.monotonic)
    granted_at: float | None = None
    """When its turn came (time.monotonic()): what a reply's time to first token starts from."""

    @property
    def waited_s(self) -> float | None:
        """How long it waited in the queue, once its turn came."""
        return None if self.granted_at is None else self.granted_at - self.queued_at

    def wait(self, timeout: float | None = None) -> bool:
        """True once this ticket holds a slot; False if it was withdrawn (or timed out)."""
        self._granted.wait(timeout)
        return self.state == "holding"

    def release(self) -> None:
        """Give the slot back after the turn, or leave the queue before it; idempotent."""
        self.queue._leave(self, holding_too=True)

    def withdraw(self) -> None:
        """Leave the queue if still waiting (Stop before the turn came); a held slot is kept."""
        self.queue._leave(self, holding_too=False)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FairQueue:
    """A FIFO semaphore: `slots` tickets hold a turn at once, the rest wait in arrival order."""

    def __init__(self, slots: int = DEFAULT_LOCAL_SLOTS) -> None:
        if slots < 1:
            raise ValueError("a queue needs at least one slot")
        self.slots = slots
        self._lock = threading.Lock()
        self._waiting: deque[Ticket] = deque()
        self._holding = 0

    def enqueue(self) -> Ticket:
        """Take a place now (arrival order is decided here), without blocking."""
        ticket = Ticket(self)
        with self._lock:
            self._waiting.append(ticket)
            self._grant()
        return ticket

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    @property
    def holding(self) -> int:
        with self._lock:
            return self._holding

    def _grant(self) -> None:
        while self._waiting and self._holding < self.slots:
            ticket = self._waiting.popleft()
            ticket.state = "holding"
            ticket.granted_at = time.monotonic()
            self._holding += 1
            ticket._granted.set()

    def _leave(self, ticket: Ticket, holding_too: bool) -> None:
        with self._lock:
            if ticket.state == "holding" and holding_too:
                self._holding -= 1
                ticket.state = "done"
            elif ticket.state == "waiting":
                self._waiting.remove(ticket)
                ticket.state = "withdrawn"
            ticket._granted.set()
            self._grant()


class DeviceQueues:
    """One FairQueue per device name ("cpu", "cuda:0"), created on first use, each with
    `slots` turns at once (--local-concurrency). The chat service owns one and hands it to
    the local backends, so every local model on one device shares that device's queue."""

    def __init__(self, slots: int = DEFAULT_LOCAL_SLOTS) -> None:
        if slots < 1:
            raise ValueError("local concurrency must be at least 1")
        self.slots = slots
        self._queues: dict[str, FairQueue] = {}
        self._lock = threading.Lock()

    def for_device(self, device: str) -> FairQueue:
        with self._lock:
            if device not in self._queues:
                self._queues[device] = FairQueue(self.slots)
            return self._queues[device]
