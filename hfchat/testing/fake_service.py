"""`FakeService`: scripted replies in place of `ChatService`, for wiring tests that need no model.

The UI (the chat box, `/chat`, conversations, presets, compare) only calls `respond`; a
`FakeService` answers that call with a scripted reply, streamed in pieces through the real
`Reply` (so the messages, thinking and footer have the app's own shape), and records what the
UI sent: the message, the history and every setting. Tests of the wiring then assert on what
reached the service and on what came back, without loading a model or starting a server. It
stands in for the service under the UI, never for the code a test exercises.

    service = FakeService("Hello!", Scripted("The answer.", thinking="Let me see."))
    with running_app(options, service) as app:
        app.client().predict(message={"text": "Hi", "files": []}, api_name="/chat")
    assert service.calls[0].values["temperature"] == 0.7
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hfchat.backends.types import Delta
from hfchat.chat import ChatService
from hfchat.config import Backend, InputLimits
from hfchat.messages import content_text
from hfchat.reply import Reply, ReplySource
from hfchat.tools.registry import ToolRegistry
from hfchat.updates import ReplyView


@dataclass(frozen=True)
class Scripted:
    """One scripted reply: its answer, optional thinking, and how it streams."""

    text: str
    thinking: str = ""
    pieces: int = 3
    """The answer (and the thinking) arrive in this many deltas, so the UI sees a stream."""
    delay_s: float = 0.0
    """A pause before each delta, for tests of Stop and of what shows while a reply streams."""


@dataclass(frozen=True)
class FakeCall:
    """What the UI passed to `respond` for one turn."""

    text: str
    message: Any
    history: list[dict[str, Any]]
    values: dict[str, Any]
    session_token: str | None = None
    session: str | None = None
    oauth_token: str | None = None
    endpoint_key: str | None = None
    client: str | None = None


def _split(text: str, pieces: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


_RESPOND = inspect.signature(ChatService.respond)
_MEASURE = inspect.signature(ChatService.measure)


class FakeService:
    """Replays `replies` in order, one per turn (plain strings or `Scripted`); once they run
    out it asks `answer` (the turn's `FakeCall` -> its reply), which by default echoes the
    message (`You said: ...`). `calls` lists every turn's `FakeCall`; `stopped` counts turns
    that ended early (Stop, or a `cancel` set by compare)."""

    def __init__(self, *replies: str | Scripted, answer: Callable[[FakeCall], str | Scripted] | None = None) -> None:
        self.answer = answer or (lambda call: f"You said: {call.text}")
        self.replies: deque[Scripted] = deque()
        self.calls: list[FakeCall] = []
        self.stopped = 0
        self.limits = InputLimits()  # as ChatService's: what compare's checks read (local_dirs)
        self.tools = ToolRegistry()  # as ChatService's: what the settings panel's Tools section lists
        self.measured: list[str] = []
        """The text of each message the context meter measured (`measure`)."""
        self._lock = threading.Lock()
        self.script(*replies)

    def reset(self) -> None:
        """Forget the calls and the unanswered replies (an app shared by several tests)."""
        with self._lock:
            self.replies.clear()
            self.calls.clear()
            self.stopped = 0

    def script(self, *replies: str | Scripted) -> None:
        """Queue more replies, answered in order by the next turns."""
        with self._lock:
            self.replies.extend(r if isinstance(r, Scripted) else Scripted(r) for r in replies)

    def _next(self, call: FakeCall) -> Scripted:
        with self._lock:
            self.calls.append(call)
            if self.replies:
                return self.replies.popleft()
        reply = self.answer(call)
        return reply if isinstance(reply, Scripted) else Scripted(reply)

    def measure(self, *args: Any, **kwargs: Any) -> None:
        """The context meter's call, bound as `ChatService.measure` binds it; no model, so no
        count (the meter stays empty)."""
        bound = _MEASURE.bind(self, *args, **kwargs)
        with self._lock:
            self.measured.append(content_text(bound.arguments["message"]))

    def respond(self, *args: Any, **kwargs: Any) -> Iterator[ReplyView]:
        """The reply so far (a typed view), after each scripted delta. Called exactly as
        `ChatService.respond`: the arguments are bound by that method's own signature, so the
        two cannot drift apart (a call the real service would refuse fails here too)."""
        bound = _RESPOND.bind(self, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        message, history, values = a["message"], a["history"], a["values"]
        cancel: threading.Event | None = a["cancel"]
        show_speed: bool = a["show_speed"]
        call = FakeCall(
            content_text(message),
            message,
            [dict(m) for m in history],
            dict(values),
            a["session_token"],
            a["session"],
            a["oauth_token"],
            a["endpoint_key"],
            a["client"],
        )
        scripted = self._next(call)
        try:
            backend = Backend(values.get("backend") or Backend.LOCAL)
        except ValueError:
            backend = Backend.LOCAL
        reply = Reply(ReplySource(backend, str(values.get("model") or "fake-model")))
        deltas = [Delta(reasoning=p) for p in _split(scripted.thinking, scripted.pieces)]
        deltas += [Delta(text=p) for p in _split(scripted.text, scripted.pieces)]
        finished = False
        try:
            for delta in deltas:
                if scripted.delay_s:
                    time.sleep(scripted.delay_s)
                if cancel is not None and cancel.is_set():
                    return
                reply.add(delta)
                yield reply.view(show_speed)
            reply.finish()
            finished = True
            yield reply.view(show_speed)
        finally:
            if not finished:
                with self._lock:
                    self.stopped += 1
