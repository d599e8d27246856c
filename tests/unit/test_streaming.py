"""`hfchat.streaming.paced`: a blocking stream on the event loop, at most `rate` items a second,
the first (and the first urgent) item at once, a held item sent when its interval is over, the
last always; closing or cancelling it reaches the producer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from hfchat.streaming import paced


async def _collect(source: Iterator[object], **kwargs: object) -> list[object]:
    return [item async for item in paced(source, **kwargs)]  # type: ignore[arg-type]


def test_rate_zero_sends_every_item_in_order() -> None:
    assert asyncio.run(_collect(iter(range(50)), rate=0)) == list(range(50))


def test_a_fast_stream_is_coalesced_and_the_last_item_is_always_sent() -> None:
    """The items are cumulative (each holds the reply so far), so the newest one stands for
    those the loop had no time to send."""
    got = asyncio.run(_collect(iter(range(500)), rate=20))
    assert got[-1] == 499, got
    assert got == sorted(got) and len(got) <= 10, f"500 instant items at 20/s should be a handful: {got}"


def test_a_held_item_is_sent_when_its_interval_ends_even_while_the_stream_is_silent() -> None:
    """0 goes at once, 1 is held (it comes within the second's interval); the stream then waits
    until the consumer has seen 1, which only the timed flush can deliver."""
    seen_zero, seen_one = threading.Event(), threading.Event()

    def source() -> Iterator[int]:
        yield 0
        assert seen_zero.wait(10)
        yield 1
        assert seen_one.wait(10), "1 was never sent while the stream was silent"
        yield 2

    async def run() -> list[int]:
        got = []
        async for item in paced(source(), rate=1):
            got.append(item)
            (seen_zero if item == 0 else seen_one).set()
        return got

    assert asyncio.run(asyncio.wait_for(run(), 15)) == [0, 1, 2]


def test_the_first_urgent_item_is_not_held_for_the_interval() -> None:
    """At 1 update a second, the first text (urgent) right after the loading notice still goes
    at once: pacing never adds to the time to first token."""

    def source() -> Iterator[str]:
        yield "loading"
        time.sleep(0.05)
        yield "text"
        time.sleep(3)  # the stream goes on; the test only needs the first text

    async def first_text(urgent: bool) -> float:
        started = time.monotonic()
        async for item in paced(source(), rate=1, urgent=(lambda x: x == "text") if urgent else None):
            if item == "text":
                return time.monotonic() - started
        raise AssertionError("no text")

    assert asyncio.run(first_text(urgent=True)) < 0.6
    assert asyncio.run(first_text(urgent=False)) > 0.9, "without urgent, the interval holds it (the test's control)"


def _endless(closed: list[str], cancel: threading.Event | None = None) -> Iterator[int]:
    i = 0
    try:
        while cancel is None or not cancel.is_set():
            yield i
            i += 1
            time.sleep(0.01)
    finally:
        closed.append(threading.current_thread().name)


def test_closing_it_sets_cancel_and_closes_the_stream_in_its_own_thread() -> None:
    closed: list[str] = []
    cancel = threading.Event()

    async def run() -> None:
        stream = paced(_endless(closed), rate=0, cancel=cancel)
        assert await anext(stream) == 0
        await stream.aclose()  # what Stop does to the event's generator

    asyncio.run(run())
    assert cancel.is_set()
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closed == ["hfchat-stream"], "the stream's finally ran, in the thread that iterated it"


def test_cancelling_its_task_sets_cancel_which_a_blocked_producer_sees() -> None:
    """Gradio's `cancels=` cancels the event's task: the producer, blocked on a backend call
    that watches the event (as `ChatService.respond` does), ends at once."""
    closed: list[str] = []
    cancel = threading.Event()

    def blocked() -> Iterator[int]:
        try:
            yield 0
            cancel.wait(30)  # a backend call waiting for its first token
            yield 1
        finally:
            closed.append("closed")

    async def run() -> None:
        async def consume() -> None:
            async for _ in paced(blocked(), rate=0, cancel=cancel):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(run())
    assert cancel.is_set()
    while not closed and time.monotonic() - started < 5:
        time.sleep(0.01)
    assert closed == ["closed"] and time.monotonic() - started < 5


def test_an_error_in_the_stream_reaches_the_consumer_after_what_came_before() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("bug")

    got: list[int] = []

    async def run() -> None:
        async for item in paced(broken(), rate=0):
            got.append(item)

    with pytest.raises(ValueError, match="bug"):
        asyncio.run(run())
    assert got == [1]
