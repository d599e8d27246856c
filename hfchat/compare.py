"""Compare mode: one prompt, two configurations (A and B), both replies streaming at once.

Gradio-free. Each side runs `ChatService.respond` in its own thread, on the same service
and so the same model cache as the main chat; their progress is merged into one stream
of updates. A slow side never holds back the other's updates, an error stays on its own
side (respond turns it into that side's reply), and Stop closes both streams.

Each side keeps its own history: a follow-up question goes to A with A's earlier replies
and to B with B's, as if they were two chats that always get the same prompt.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any, TypeVar

from hfchat.chat import ChatService
from hfchat.config import BACKEND_LABELS, Backend, display_url
from hfchat.messages import Message, content_text
from hfchat.updates import ReplyView

T = TypeVar("T")

SIDES = ("A", "B")

THREAD_NAME = "hfchat-compare"

IDLE_S = 1.0
"""While no side has news, the merged stream repeats itself this often, so that Stop
(which Gradio delivers by closing the generator between steps) never waits on a slow side."""


class _Done:
    """Marks the end of one side's stream in the shared queue."""


class _Failure:
    """An exception raised by one side's stream, carried to the reader."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _pump(index: int, stream: Iterator[T], out: queue.Queue[tuple[int, object]], stop: threading.Event) -> None:
    """Read one stream into the shared queue until it ends or Stop; close it in this thread,
    the one that iterates it (a generator can't be closed from another thread mid-step)."""
    try:
        for item in stream:
            if stop.is_set():
                break
            out.put((index, item))
    except BaseException as exc:  # noqa: BLE001 - handed to the reader, which re-raises it
        out.put((index, _Failure(exc)))
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        out.put((index, _Done()))


def merge_latest(streams: Sequence[Iterator[T]], idle_s: float = IDLE_S) -> Generator[list[T | None], None, None]:
    """Run the streams concurrently; after each new item, yield every stream's latest item
    (None where a stream has yielded nothing yet), and the same again after `idle_s`
    without news.

    Items that arrive together are coalesced into one update. A stream that raises stops
    only itself: the others run to the end, then the first error is raised. Closing this
    generator (Stop) makes every stream stop at its next item and closes it.
    """
    out: queue.Queue[tuple[int, object]] = queue.Queue()
    stop = threading.Event()
    for index, stream in enumerate(streams):
        threading.Thread(target=_pump, args=(index, stream, out, stop), name=THREAD_NAME, daemon=True).start()
    latest: list[T | None] = [None] * len(streams)
    running = len(streams)
    failures: list[BaseException] = []
    try:
        while running:
            changed = False
            try:
                index, item = out.get(timeout=idle_s)
            except queue.Empty:
                yield list(latest)
                continue
            while True:
                if isinstance(item, _Done):
                    running -= 1
                elif isinstance(item, _Failure):
                    failures.append(item.exc)
                else:
                    latest[index] = item  # type: ignore[assignment]
                    changed = True
                try:
                    index, item = out.get_nowait()
                except queue.Empty:
                    break
            if changed:
                yield list(latest)
    finally:
        stop.set()
    if failures:
        raise failures[0]


@dataclass(frozen=True)
class Side:
    """One side's chat window before this turn, and its settings (the sidebar's names)."""

    history: Sequence[Mapping[str, Any]]
    values: Mapping[str, Any]


@dataclass(frozen=True)
class SideView:
    """One side during a turn: its chat window with the prompt, and its reply so far
    (empty until it starts), for the UI to render (`hfchat.ui.render.to_messages`)."""

    asked: list[Message]
    reply: ReplyView = ()


def compare_turn(
    service: ChatService,
    message: Any,
    sides: Sequence[Side],
    session_token: str | None,
    session: str | None = None,
    oauth_token: str | None = None,
    endpoint_key: str | None = None,
    client: str | None = None,
) -> Iterator[list[SideView]]:
    """Send one prompt to every side at once; each update is every side's view.

    A blank prompt changes nothing, like the main chat box. The prompt is shown on both
    sides at once, before either model answers. Each side is one turn for the rate limit
    of `session` (and of `client`, the visitor's address, on a public deployment), goes
    through the same checks as a main chat turn, and uses the same token (the visitor's box,
    else their sign-in, else the server's), and the visitor's endpoint key from the main
    sidebar, which `ChatService.credential` sends only to a custom endpoint.
    """
    if not content_text(message).strip():
        return
    asked = [[*map(dict, side.history), {"role": "user", "content": message}] for side in sides]
    yield [SideView(window) for window in asked]
    # One event per side: respond sets its own when its turn ends, which must not stop the other.
    cancels = [threading.Event() for _ in sides]
    streams = [
        service.respond(
            message,
            side.history,
            side.values,
            session_token,
            session=session,
            oauth_token=oauth_token,
            cancel=cancel,
            endpoint_key=endpoint_key,
            client=client,
        )
        for side, cancel in zip(sides, cancels, strict=True)
    ]
    try:
        with closing(merge_latest(streams)) as updates:
            for latest in updates:
                yield [SideView(window, view or ()) for window, view in zip(asked, latest, strict=True)]
    finally:
        for cancel in cancels:  # Stop: a side still waiting for its backend (or its turn) gives up now
            cancel.set()


DESCRIBED_BY = ("backend", "model", "provider", "endpoint_url", "served_model", "load_in_4bit")
"""The settings `describe` reads: a side's title follows these."""


def describe(values: Mapping[str, Any]) -> str:
    """A one-line name for a side's configuration, such as 'Local: owner/name (4-bit)'."""
    try:
        backend = Backend(values.get("backend"))
    except ValueError:
        return "unknown backend"
    if backend is Backend.ENDPOINT:
        url = str(values.get("endpoint_url") or "").strip()
        where = display_url(url) if url else "no URL yet"
        served = str(values.get("served_model") or "").strip()
        return f"{BACKEND_LABELS[backend]}: {where}" + (f" ({served})" if served else "")
    model = str(values.get("model") or "").strip() or "no model yet"
    if backend is Backend.PROVIDERS:
        return f"{BACKEND_LABELS[backend]}: {model} via {values.get('provider') or 'auto'}"
    return f"{BACKEND_LABELS[backend]}: {model}" + (" (4-bit)" if values.get("load_in_4bit") else "")


def copy_settings(values: Mapping[str, Any], target: Sequence[str]) -> dict[str, Any]:
    """A side's settings as values for the main chat's controls of the same names.

    Only names both have are copied: the session token is never part of a side, so the
    main chat keeps its own.
    """
    return {name: values[name] for name in target if name in values}
