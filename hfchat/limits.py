"""Limits for a public demo: turns per visitor, and how long and how big one reply may be.

Rate limits count per session and, on a public deployment, per client address too: a
session is Gradio's session hash (one browser tab, or one gradio_client Client), which a
script renews for free, so a new session from the same address is not a new allowance.
The state is bounded: at most `max_sessions` keys are remembered, least recently seen
dropped first, and each keeps at most `count` timestamps.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hfchat.errors import TooManyMessagesError

DEFAULT_TURN_TIMEOUT_S = 300
"""A turn's total deadline: the longest a reply may stream (--turn-timeout)."""
DEFAULT_STALL_TIMEOUT_S = 60
"""The longest a started reply may go without a new chunk (--stall-timeout)."""
CHARS_PER_TOKEN = 16
"""A reply keeps at most this many characters per max_new_tokens: no real token is longer,
so a server that packs more into its chunks than it was asked for is cut."""

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*([a-z]+))?\s*$", re.I)


@dataclass(frozen=True)
class Rate:
    """`count` turns per `period` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period, f"{self.period:g}s")
        return f"{self.count}/{unit}"


def parse_rate(text: str) -> Rate | None:
    """'10/min', '2/s', '100/h' or a bare number (per minute); '0' or 'off' means no limit."""
    if str(text).strip().lower() in ("", "0", "off", "none"):
        return None
    match = _RATE.match(str(text))
    unit = (match.group(2) or "min").lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"expected a rate such as 10/min, 2/s or 100/h (or 'off'), got {text!r}")
    return Rate(int(match.group(1)), _UNITS[unit])


class RateLimiter:
    """Sliding-window limit per session and per client address; thread-safe, bounded in memory."""

    def __init__(
        self, rate: Rate | None, max_sessions: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.max_sessions = max_sessions
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._hits)

    def admit(self, session: str | None, client: str | None = None) -> None:
        """Count one turn for `session` and for `client` (an address, when the deployment is
        public), or raise TooManyMessagesError saying when to retry.

        A turn must fit both allowances; a refused turn counts against neither.
        """
        rate = self.rate
        if rate is None:
            return
        keys = [f"session:{session or 'anonymous'}"] + ([f"client:{client}"] if client else [])
        now = self._clock()
        with self._lock:
            windows = [self._window(key, rate.count) for key in keys]
            waits = [rate.period - (now - hits[0]) for hits in windows if len(hits) == rate.count]
            waits = [w for w in waits if w > 0]
            if waits:
                wait = math.ceil(max(waits))
                raise TooManyMessagesError(
                    f"This demo answers at most {rate.count} messages per {_period_words(rate.period)} "
                    "from each visitor, and you have reached that.",
                    f"Try again in {wait} s. Your conversation is kept.",
                    retry_after=wait,
                )
            for hits in windows:
                hits.append(now)

    def _window(self, key: str, count: int) -> deque[float]:
        hits = self._hits.pop(key, None) or deque(maxlen=count)
        self._hits[key] = hits  # most recently seen last
        while len(self._hits) > self.max_sessions:
            self._hits.popitem(last=False)
        return hits


DEFAULT_TURNS_PER_CLIENT = 4
"""Turns one client address may have running at once on a public deployment."""


class ActiveTurns:
    """At most `limit` turns at once per client address; thread-safe.

    A rate limit counts turns started, and a turn may run up to --turn-timeout: at 10/min
    and 300 s, one address could hold 50 workers with slow streams, more than the queue
    serves at once. Only running turns are remembered, so memory is bounded by them.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit or None  # 0 means no limit
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str | None) -> str | None:
        """Count a turn as running for `client`, or raise TooManyMessagesError; returns what
        `release` takes (None when nothing was counted)."""
        if self.limit is None or not client:
            return None
        with self._lock:
            running = self._running.get(client, 0)
            if running >= self.limit:
                raise TooManyMessagesError(
                    f"This demo runs at most {self.limit} replies at once for each visitor, and {running} of "
                    "yours are still being written.",
                    "Wait for a reply to finish (or press Stop on one), then send again. Your conversation is kept.",
                    retry_after=1,
                )
            self._running[client] = running + 1
        return client

    def release(self, held: str | None) -> None:
        if held is None:
            return
        with self._lock:
            left = self._running.get(held, 1) - 1
            if left > 0:
                self._running[held] = left
            else:
                self._running.pop(held, None)

    def running(self, client: str) -> int:
        with self._lock:
            return self._running.get(client, 0)


def client_address(request: Any, on_space: bool = False) -> str | None:
    """The visitor's address for the rate limit, from Gradio's request (None without one).

    Gradio's `request.client.host` is what uvicorn made of the connection: the peer's
    address, or, when the peer is a trusted proxy (FORWARDED_ALLOW_IPS, by default only
    127.0.0.1: a reverse proxy or a share-link tunnel on this machine), the last address
    that proxy appended to X-Forwarded-For. On a Space the peer is the Space's own proxy on
    an internal address, which uvicorn does not trust, so every visitor would share it;
    there the address is read from X-Forwarded-For instead: the last public one. Entries
    to its left came from the visitor and may be forged; to its right are only internal hops.
    """
    if request is None:
        return None
    if on_space:
        headers = getattr(request, "headers", None)
        getlist = getattr(headers, "getlist", None)  # starlette's Headers: one value per header line
        get = getattr(headers, "get", None)  # a plain mapping (Gradio's copy of a queued request)
        values = getlist("x-forwarded-for") if callable(getlist) else [get("x-forwarded-for") if callable(get) else ""]
        forwarded = ",".join(str(v) for v in values if v)
        for entry in reversed(forwarded.split(",")):
            host = _host_of(entry)
            if host is not None and host.is_global:
                return str(host)
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return str(host) if host else None


def _host_of(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in one X-Forwarded-For entry ("1.2.3.4", "1.2.3.4:5", "[::1]:5"), or None."""
    text = entry.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _period_words(period: float) -> str:
    return {1.0: "second", 60.0: "minute", 3600.0: "hour"}.get(period, f"{period:g} seconds")
