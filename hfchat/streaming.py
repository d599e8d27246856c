"""A blocking reply stream, driven from an event loop and paced for the page.

Gradio runs a sync generator by handing each `next()` to a worker thread and back: one round
trip per token, which was 39% of the app's CPU in issue 14's profile, and each yield is one
`process_api` call and one SSE event. `paced` turns the sync stream into an async generator:
one thread iterates the stream for the whole turn and hands items to the loop, and the loop
sends at most `rate` of them a second. The items are cumulative (each is the whole reply so
far), so an item left unsent loses nothing: the next one contains it.

- The first item, and the first item `urgent` accepts (the first text of the answer), are
  sent at once: pacing never delays the time to first token.
- An item held back is sent when its interval is over, even if the stream is silent then.
- The last item is always sent.

Gradio-free: the UI's event functions and the API both use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import closing
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_RATE = 20.0
"""Updates a second to the page: smooth to read, a tenth of the events of a fast model's tokens."""

_END = object()
"""The stream's end, as the pump thread's last item."""


def _is_end(item: Any) -> bool:
    return item is _END or isinstance(item, _Raised)


class _Raised:
    """What the stream raised, carried to the loop, which re-raises it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _pump(source: Iterator[Any], put: Callable[[Any], None], closed: threading.Event) -> None:
    """Iterate `source` in this thread, handing each item to the loop; stop once the consumer
    has `closed` (not at the producer's own cancel event, which a backend sets as it ends).

    `source` is closed here, in the thread that iterates it (a generator cannot be closed from
    another thread while it runs), so its `finally` blocks run: that is what ends a local
    generate thread or closes an HTTP stream."""
    try:
        with closing(source) if hasattr(source, "close") else contextlib.nullcontext():  # type: ignore[type-var]
            for item in source:
                if closed.is_set():
                    break
                put(item)
    except BaseException as exc:  # noqa: BLE001 - handed to the loop, which re-raises it
        put(_Raised(exc))
    finally:
        put(_END)


async def paced(
    source: Iterator[T],
    rate: float = DEFAULT_RATE,
    urgent: Callable[[T], bool] | None = None,
    cancel: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[T, None]:
    """`source`'s items on the event loop, at most `rate` a second (0: every item).

    `cancel` is set when this generator ends for any reason (finished, closed by Stop, or its
    task cancelled): pass the same event to the stream's producer so a blocked backend call
    notices at once. `clock` is for tests."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = cancel or threading.Event()
    interval = 1.0 / rate if rate > 0 else 0.0
    context = contextvars.copy_context()

    def put(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed (app shutdown): nobody listens
            loop.call_soon_threadsafe(queue.put_nowait, item)

    closed = threading.Event()
    thread = threading.Thread(target=context.run, args=(_pump, source, put, closed), name="hfchat-stream", daemon=True)
    thread.start()
    sent_at = -float("inf")
    held: Any = _END  # the newest item not yet sent
    last: Any = None  # the stream's end (_END or _Raised) once it has arrived
    first, urgent_seen = True, urgent is None
    try:
        while last is None:
            if held is _END:
                item = await queue.get()
            else:
                wait_s = sent_at + interval - clock()
                try:
                    item = await asyncio.wait_for(queue.get(), wait_s) if wait_s > 0 else queue.get_nowait()
                except (TimeoutError, asyncio.QueueEmpty):
                    sent_at, out, held = clock(), held, _END
                    yield out
                    continue
            while interval and not _is_end(item) and not queue.empty():
                newer = queue.get_nowait()  # the loop fell behind: the newest item holds them all
                if _is_end(newer):
                    last = newer
                    break
                item = newer
            if _is_end(item):
                last, item = item, held
            if item is _END:
                continue
            now_urgent = not urgent_seen and urgent is not None and urgent(item)
            if first or now_urgent or last is not None or clock() - sent_at >= interval:
                first, urgent_seen = False, urgent_seen or now_urgent
                sent_at, held = clock(), _END
                yield item
            else:
                held = item
        if isinstance(last, _Raised):
            raise last.error
    finally:
        closed.set()
        cancel.set()
