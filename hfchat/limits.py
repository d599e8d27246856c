"""Per-session rate limiting for a public demo: a visitor gets a clear "try again" reply.

A session is Gradio's session hash (one browser tab, or one gradio_client Client). The
state is bounded: at most `max_sessions` sessions are remembered, least recently seen
dropped first, and each keeps at most `count` timestamps.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from hfchat.errors import TooManyMessagesError

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
    """Sliding-window limit per session; thread-safe and bounded in memory."""

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

    def admit(self, session: str | None) -> None:
        """Count one turn for `session`, or raise TooManyMessagesError saying when to retry."""
        rate = self.rate
        if rate is None:
            return
        key = session or "anonymous"
        now = self._clock()
        with self._lock:
            hits = self._hits.pop(key, None) or deque(maxlen=rate.count)
            self._hits[key] = hits  # most recently seen last
            while len(self._hits) > self.max_sessions:
                self._hits.popitem(last=False)
            if len(hits) == rate.count and now - hits[0] < rate.period:
                wait = math.ceil(rate.period - (now - hits[0]))
                raise TooManyMessagesError(
                    f"This demo answers at most {rate.count} messages per {_period_words(rate.period)} "
                    "from each visitor, and you have reached that.",
                    f"Try again in {wait} s. Your conversation is kept.",
                    retry_after=wait,
                )
            hits.append(now)


def _period_words(period: float) -> str:
    return {1.0: "second", 60.0: "minute", 3600.0: "hour"}.get(period, f"{period:g} seconds")
