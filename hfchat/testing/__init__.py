"""Helpers shared by the test suite (`tests/`) and the benchmarks (`bench/`).

Importing this package is cheap and gradio-free. The heavier parts are submodules, imported
where they are needed:

- `hfchat.testing.servers`: real loopback servers (`transformers serve`, a recording proxy,
  a canned-response recorder) and the canned OpenAI-style responses.
- `hfchat.testing.tiny_models`: tiny deterministic models built offline (needs torch).
- `hfchat.testing.process`: `python app.py` as a subprocess on a free port (`AppProcess`).
- `hfchat.testing.app`: `running_app`, the app built by `build_app` and launched in this
  process (imports gradio, through `hfchat.ui`).
- `hfchat.testing.fake_service`: `FakeService`, scripted replies in place of `ChatService`
  for wiring tests that need no model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from hfchat.reply import answer_text

__all__ = ["FakeClock", "answer_text", "wait_until"]

T = TypeVar("T")


class FakeClock:
    """A clock the test moves by hand (`clock.now += 2.5`), so durations and rate windows are
    exact and nothing sleeps. Pass it wherever a `clock: Callable[[], float]` is taken."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], T], timeout: float = 30.0, what: str = "condition", interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy and return that; raise TimeoutError
    naming `what` after `timeout` seconds. For state that settles asynchronously (a page, a
    thread, a queue): waiting for the state, not sampling it once, is what keeps tests stable."""
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
