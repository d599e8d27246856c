"""Per-session rate limiting: a clear "try again" reply, bounded memory."""

from __future__ import annotations

import pytest

from hfchat.errors import TooManyMessagesError
from hfchat.limits import Rate, RateLimiter, parse_rate
from hfchat.testing import FakeClock


@pytest.mark.parametrize(
    ("text", "rate"),
    [("10/min", Rate(10, 60)), ("2/s", Rate(2, 1)), ("100/h", Rate(100, 3600)), ("5", Rate(5, 60))],
)
def test_rates_parse(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("off", ["off", "0", "", "none"])
def test_off_means_no_limit(off: str) -> None:
    assert parse_rate(off) is None
    limiter = RateLimiter(parse_rate(off))
    for _ in range(1000):
        limiter.admit("s")


@pytest.mark.parametrize("bad", ["ten/min", "5/fortnight", "-3/min", "1.5/s"])
def test_bad_rates_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="10/min"):
        parse_rate(bad)


def test_a_session_over_its_rate_is_told_when_to_retry() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(3, 60), clock=clock)
    for _ in range(3):
        limiter.admit("a")
    clock.now += 20
    with pytest.raises(TooManyMessagesError) as caught:
        limiter.admit("a")
    assert caught.value.retry_after == 40
    assert "3 messages per minute" in caught.value.message and "Try again in 40 s" in caught.value.hint
    assert caught.value.markdown().startswith("⚠ **Busy, try again.**")
    limiter.admit("b")  # other sessions are not affected
    clock.now += 40
    limiter.admit("a")  # the window slid: admitted again


def test_refused_turns_do_not_count() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(1, 10), clock=clock)
    limiter.admit("a")
    for _ in range(5):
        clock.now += 1
        with pytest.raises(TooManyMessagesError):
            limiter.admit("a")
    clock.now += 5
    limiter.admit("a")


def test_memory_is_bounded_by_the_number_of_sessions() -> None:
    limiter = RateLimiter(Rate(2, 60), max_sessions=100, clock=FakeClock())
    for i in range(10_000):
        limiter.admit(f"session-{i}")
    assert len(limiter) == 100
