"""Compare mode: one prompt, two configurations (A and B), both replies streaming at once.

Gradio-free. Each side runs `ChatService.respond` in its own thread, on the same service
and so the same model cache as the main chat; their progress is merged into one stream
of updates. A slow side never holds back the other's updates, an error stays on its own
side (respond turns it into that side's reply), and Stop closes both streams.

Each side keeps its own history: a follow-up question goes to A with A's earlier replies
and to B with B's, as if they were two chats that always get the same prompt.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from hfchat.chat import ChatService
from hfchat.config import BACKEND_LABELS, Backend, build_settings, display_url
from hfchat.errors import ConfigError
from hfchat.messages import Message, content_text
from hfchat.settings import SETTINGS, Role, Widget, applies
from hfchat.updates import Failed, Footer, ReplyView, Waiting

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

    A blank prompt, or a side whose settings do not validate, is refused here, before
    anything is sent (`check_turn` raises ConfigError: the UI shows it as one toast). The
    prompt is shown on both sides at once, before either model answers. Each side is one
    turn for the rate limit of `session` (and of `client`, the visitor's address, on a
    public deployment), goes through the same checks as a main chat turn, and uses the same
    token (the visitor's box, else their sign-in, else the server's), and the visitor's
    endpoint key from the main sidebar, which `ChatService.credential` sends only to a
    custom endpoint. A side queued behind the other on one device says "waiting for A…".
    """
    check_turn(message, sides, service.limits.local_dirs)
    return _turn(service, message, sides, session_token, session, oauth_token, endpoint_key, client)


def _turn(
    service: ChatService,
    message: Any,
    sides: Sequence[Side],
    session_token: str | None,
    session: str | None,
    oauth_token: str | None,
    endpoint_key: str | None,
    client: str | None,
) -> Iterator[list[SideView]]:
    asked = [[*map(dict, side.history), {"role": "user", "content": message}] for side in sides]
    local = [_valid("backend", side.values.get("backend")) is Backend.LOCAL for side in sides]
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
                views = waiting_for_sides([view or () for view in latest], local)
                yield [SideView(window, view) for window, view in zip(asked, views, strict=True)]
    finally:
        for cancel in cancels:  # Stop: a side still waiting for its backend (or its turn) gives up now
            cancel.set()


def check_turn(message: Any, sides: Sequence[Side], local_dirs: Sequence[str] = ()) -> None:
    """Refuse a compare turn that could not run as asked: a blank prompt, or a side whose
    settings do not validate (the same validation as a turn's, `build_settings`), named
    by its side. Raises ConfigError; nothing has been sent or shown yet."""
    if not content_text(message).strip():
        raise ConfigError("The prompt is empty.", "Type a prompt, then send it to both.", field="message")
    for name, side in zip(SIDES, sides, strict=True):
        check_side(name, side.values, local_dirs)


def check_side(name: str, values: Mapping[str, Any], local_dirs: Sequence[str] = ()) -> None:
    """Raise ConfigError, naming side `name`, when its settings do not validate."""
    try:
        build_settings(**values, token_fingerprint="", local_dirs=local_dirs)
    except ConfigError as exc:
        hint = f"Fix it in {name}'s settings, then send again."
        message = exc.message if exc.message.endswith(".") else f"{exc.message}."
        raise ConfigError(f"{name}'s settings: {message}", hint, field=exc.field) from None


def waiting_for_sides(views: Sequence[ReplyView], local: Sequence[bool]) -> list[ReplyView]:
    """Each side's view, where a side that waits for its device names the sides it waits
    for ("waiting for A…"): the `local` ones (only local generations take turns on a device)
    still running, neither waiting themselves nor done. Otherwise it waits for another chat."""
    running = [
        is_local and (not view or not isinstance(view[-1], Waiting | Footer | Failed))
        for view, is_local in zip(views, local, strict=True)
    ]
    shown = []
    for index, view in enumerate(views):
        ahead = [SIDES[i] for i, busy in enumerate(running) if busy and i != index]
        if view and isinstance(view[-1], Waiting) and ahead:
            view = (*view[:-1], dataclasses.replace(view[-1], behind=" and ".join(ahead)))
        shown.append(view)
    return shown


SAME_SETTINGS = "same settings"
"""The note both titles carry when the sides do not differ."""

NAMED_BY_VALUE = frozenset({"backend", "model", "endpoint_url"})
"""Settings a title shows by their value alone ("A · Local", "B · SmolLM2-135M-Instruct")."""

SHOWN_DIFFERENCES = 2
"""How many differences a title names; the rest are counted ("+2")."""

TEXT_CHARS = 24
"""A text setting (the system prompt) is shown up to this long in a title."""


def side_titles(sides: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each side's title, naming what differs between the sides: "A · temperature 0.2" /
    "B · temperature 1.5"; the model's short name or the backend's label when those differ;
    the first SHOWN_DIFFERENCES of several, then "+N"; "A · same settings" when nothing does.

    Every setting that reaches a backend (`Role.TURN`) is compared, in the schema's order,
    by its validated value, and named by its label (`hfchat.settings`); a setting counts
    only where it reaches every side's backend and takes effect on one (`_compared`)."""
    names = [name for name in SETTINGS if _compared(name, sides)]
    values = [[_valid(name, side.get(name)) for name in names] for side in sides]
    differing = [i for i, _ in enumerate(names) if any(v[i] != values[0][i] for v in values)]
    titles = []
    for side, side_values in zip(SIDES, values, strict=True):
        if not differing:
            titles.append(f"{side} · {SAME_SETTINGS}")
            continue
        parts = [difference(names[i], side_values[i]) for i in differing]
        more = len(parts) - SHOWN_DIFFERENCES
        titles.append(" · ".join([side, *parts[:SHOWN_DIFFERENCES]]) + (f" +{more}" if more > 0 else ""))
    return titles


def difference(name: str, value: Any) -> str:
    """One setting as a title names it: its label and value ("temperature 0.2"), or its
    value alone for the settings that say what a side runs (NAMED_BY_VALUE)."""
    shown = shown_value(name, value)
    return shown if name in NAMED_BY_VALUE else f"{SETTINGS[name].control.label} {shown}"


def shown_value(name: str, value: Any) -> str:
    """A setting's value, short: on/off, numbers as typed (0.2, not 0.20000001), None as
    "random" (the schema's None: seed), a model's short name, a URL without credentials,
    free text quoted and cut at TEXT_CHARS."""
    if isinstance(value, Backend):
        return value.label
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "random"
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value).strip()
    typed = SETTINGS[name].field.annotation is not str  # e.g. the seed, typed into a text box
    if not text:
        return "random" if typed else "empty"
    if name == "model":
        return PurePath(text).name or text
    if name == "endpoint_url":
        return display_url(text)
    if typed or SETTINGS[name].control.widget is not Widget.TEXT or not isinstance(value, str):
        return text  # a number, or one of the setting's choices
    return repr(text) if len(text) <= TEXT_CHARS else repr(text[: TEXT_CHARS - 1] + "…")


def _compared(name: str, sides: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a title compares `name`: a turn setting that reaches every side's backend and
    takes effect on at least one side (its switch is on there: do_sample for the sampling
    settings, 4-bit for its sub-options), so a control that does nothing never shows here."""
    control = SETTINGS[name].control
    if control.role is not Role.TURN:
        return False
    backends = [_valid("backend", side.get("backend")) for side in sides]
    if name != "backend" and not all(not isinstance(b, Backend) or applies(name, b) for b in backends):
        return False
    switches = [*([control.shown_when] if control.shown_when else []), *(["do_sample"] if control.sampling else [])]
    return all(any(_valid(switch, side.get(switch)) is True for side in sides) for switch in switches)


@cache
def _adapter(name: str) -> TypeAdapter[Any]:
    return TypeAdapter(SETTINGS[name].annotation)


def _valid(name: str, value: Any) -> Any:
    """The value as the schema reads it (512.0 is 512, -1 is the seed's None), or as sent
    when it does not validate (a title never refuses; the turn says what is wrong)."""
    try:
        return _adapter(name).validate_python(value)
    except ValidationError:
        return value


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
