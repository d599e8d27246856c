"""Speed figures for one reply: time to first token, tokens/s, token counts, why it stopped.

One meter for both the footer under each reply and `bench/`, so what users see and what
the benchmarks report are measured the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SpeedMeter:
    """Call `first_token()` when the first text arrives and `finish()` at the end.

    Token counts are set by whoever knows them best: the server's usage where it sends
    it, otherwise the tokenizer; `counted_by` records which.
    """

    clock: Callable[[], float] = time.perf_counter
    started: float = field(default=0.0)
    first_token_at: float | None = None
    finished_at: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    counted_by: str = ""
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        if not self.started:
            self.started = self.clock()

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = self.clock()

    def finish(self, finish_reason: str | None = None) -> None:
        self.finished_at = self.clock()
        self.finish_reason = finish_reason or self.finish_reason

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    @property
    def total_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: tokens after the first over the time after the first, so the
        prompt's prefill (in time to first token) doesn't dilute it."""
        if self.output_tokens is None or self.first_token_at is None or self.finished_at is None:
            return None
        span = self.finished_at - self.first_token_at
        if self.output_tokens < 2 or span <= 0:
            return None
        return (self.output_tokens - 1) / span
