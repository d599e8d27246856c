"""One assistant reply as it streams: its thinking, its answer, and its speed figures.

Gradio-free: `Reply` takes the backends' deltas and gives the reply so far as typed updates
(`hfchat.updates`: thinking, answer, a failure, the speed footer), which one renderer
(`hfchat.ui.render`) shows in the UI, the `/chat` API and compare mode alike; it is tested
with plain data.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfchat.backends.types import THINK_CLOSE, THINK_OPEN, Delta
from hfchat.config import Backend, ChatSettings, display_url
from hfchat.messages import Message, MessageKind, content_text, message_kind
from hfchat.settings import SEED_MAX
from hfchat.speed import SpeedMeter
from hfchat.tools.loop import CallResult
from hfchat.tools.types import ToolCallChunk, ToolCallRequest, joined_calls
from hfchat.updates import (
    CUT_HINT,
    CUT_TITLE,
    SPEED_MARK,
    Answer,
    Failed,
    Footer,
    Notice,
    ReplyView,
    Sources,
    Thinking,
    ToolCall,
    Update,
)


def answer_text(reply: Sequence[Message] | ReplyView) -> str:
    """The plain reply: the answer, with any notice and failure, but not the thinking, the
    loading notice or the speed footer; of a reply as `/chat` returns it (chat messages) or
    as `ChatService.respond` yields it (a view).

    For callers that want the plain reply, such as `/chat` API clients, the tests, the bench.
    """
    return "\n\n".join(text for item in reply if (text := _reply_text(item)))


def _reply_text(item: Message | Update) -> str:
    if isinstance(item, Notice | Answer | Failed):
        return item.text
    if isinstance(item, Mapping) and message_kind(item) in (MessageKind.ANSWER, MessageKind.NOTICE, MessageKind.FAILED):
        return content_text(item.get("content"))
    return ""


def _held_back(text: str) -> int:
    """How many trailing characters might be the start of a tag split across chunks."""
    for size in range(min(len(text), len(THINK_CLOSE) - 1), 0, -1):
        tail = text[-size:]
        if THINK_OPEN.startswith(tail) or THINK_CLOSE.startswith(tail):
            return size
    return 0


@dataclass(frozen=True)
class ReplySource:
    """Where a reply came from, for its footer: backend, model, provider, cache."""

    backend: Backend
    model: str
    provider: str | None = None
    cached: bool = True
    load_s: float = 0.0
    seed: int | None = None
    """The seed a sampled reply was drawn with (None: greedy, or no seed given), so a reply
    Retry drew with a fresh seed (`fresh_seed`) can be drawn again."""

    @classmethod
    def of(cls, settings: ChatSettings, model_id: str | None, cached: bool, load_s: float) -> ReplySource:
        """`model_id` is the built chat model's own name (an endpoint's discovered one)."""
        spec = settings.spec
        if spec.backend is Backend.ENDPOINT:
            model = settings.served_model or model_id or display_url(spec.endpoint_url or "")
        elif spec.backend is Backend.LOCAL and Path(spec.model).expanduser().is_dir():
            model = Path(spec.model).name  # a local folder: its name, not the whole path
        else:
            model = spec.model
        gen = settings.generation
        return cls(spec.backend, model, spec.provider, cached, load_s, gen.seed if gen.do_sample else None)


def _whole(value: Any) -> int:
    """A token count from saved figures (JSON): a non-negative whole number, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def fresh_seed() -> int:
    """A new random seed: what Retry samples with while sampling is on, so it always draws a new
    reply, also when the settings name a seed (which would give the same reply again); the
    footer says which seed it was."""
    return secrets.randbelow(SEED_MAX + 1)


@dataclass
class Reply:
    """Accumulates one reply's deltas; `view()` gives it at any point of the stream.

    Text inside `<think>…</think>` (tags may be split across deltas) and `reasoning`
    deltas become the thinking. A closing tag with no opening one means the template
    opened the block in the prompt: everything before it was thinking too.
    """

    source: ReplySource
    notice: str = ""
    """Shown before the answer (the trimmed-history notice); never part of the reply."""
    clock: Callable[[], float] = time.perf_counter
    meter: SpeedMeter = field(init=False)
    thinking: str = ""
    answer: str = ""
    failed: Failed | None = None
    """Why the stream broke, shown after what arrived."""
    cut_reason: str = ""
    """Why the app stopped reading the stream early (a limit), shown after what arrived."""
    chunks: int = 0
    waited_s: float | None = None
    """How long a local generation waited for its device before it began (`Delta.waited_s`)."""
    thinking_started: float | None = None
    thinking_ended: float | None = None
    finished: bool = False
    calls: list[ToolCall] = field(default_factory=list)
    """The tool calls so far, in the order the model made them (shown above the answer)."""
    sources: tuple[str, ...] = ()
    """The parts of the attached documents this reply was given (`hfchat.retrieval.Plan`),
    shown under the answer once it began."""
    step: int = 0
    """The round of the tool loop this stream belongs to (0: the first model call)."""
    _tool_chunks: list[ToolCallChunk] = field(default_factory=list)
    _step_start: int = 0
    _earlier_output: int = 0
    _inside_think: bool = False
    _held: str = ""
    _first_input: int | None = None
    """The input tokens of a continued reply's first part (`resumed`), which its footer shows."""

    def __post_init__(self) -> None:
        self.meter = SpeedMeter(clock=self.clock)

    @classmethod
    def resumed(
        cls,
        source: ReplySource,
        text: str,
        figures: Mapping[str, Any],
        notice: str = "",
        sources: tuple[str, ...] = (),
        clock: Callable[[], float] = time.perf_counter,
    ) -> Reply:
        """A reply that continues one that stopped for length (`hfchat.continuation`): its
        answer starts as `text`, and its one footer counts both parts, from the first part's
        `figures` (`figures()`): the tokens add up, the time runs on from the first part's
        total (its time to first token stays the first part's), the finish reason is the
        last part's."""
        reply = cls(source, notice=notice, clock=clock, sources=sources)
        reply.answer = text
        earlier = _whole(figures.get("output_tokens"))
        reply._earlier_output = reply.chunks = earlier
        reply._first_input = _whole(figures.get("input_tokens")) or None
        total, ttft = figures.get("total_s"), figures.get("ttft_s")
        if isinstance(total, int | float) and total >= 0:
            reply.meter.started -= total
            if isinstance(ttft, int | float) and 0 <= ttft <= total:
                reply.meter.first_token_at = reply.meter.started + ttft
        return reply

    # -- taking deltas
    def add(self, delta: Delta) -> None:
        if delta.waited_s is not None:  # the generation began only now: the wait is no part of its speed
            self.waited_s = delta.waited_s
            self.meter.started += delta.waited_s
        if delta.text or delta.reasoning or delta.tool_calls:
            self.meter.first_token()
            self.chunks += 1
        self._tool_chunks.extend(delta.tool_calls)
        if delta.reasoning:
            self._think(delta.reasoning)
        if delta.text:
            self._split(self._held + delta.text)
        if delta.usage is not None:
            self.meter.input_tokens = self._first_input or delta.usage.input_tokens
            out = delta.usage.output_tokens
            # a turn with tool calls is several model calls: their output adds up
            self.meter.output_tokens = None if out is None else self._earlier_output + out
            self.meter.counted_by = delta.usage.counted_by
        if delta.finish_reason:
            self.meter.finish_reason = delta.finish_reason

    def end_step(self) -> tuple[str, list[ToolCallRequest]]:
        """One model call of the tool loop ended: the answer text it wrote (for the assistant
        message that carries its calls) and the tool calls it made (none: it answered)."""
        held, self._held = self._held, ""
        if held and self._inside_think:
            self._think(held)
        elif held:
            self._say(held)
        requests = joined_calls(self._tool_chunks)
        self._tool_chunks = []
        text = self.answer[self._step_start :].strip()
        return text, requests

    def next_step(self) -> None:
        """The tools ran: the next model call starts a new round, its tokens counted on top."""
        self.step += 1
        self._step_start = len(self.answer)
        self._earlier_output = self.meter.output_tokens or self.chunks
        self.meter.finish_reason = None

    def call_pending(self, request: ToolCallRequest, server: str, arguments: str) -> None:
        """A call the loop is about to run (`arguments` as shown: redacted)."""
        key = secrets.token_hex(5)
        self.calls.append(ToolCall(request.id, request.name, arguments, server, step=self.step, key=key))

    def call_done(self, result: CallResult) -> None:
        """A call ended: its result (or error) and duration replace the pending one."""
        for i, call in enumerate(self.calls):
            if call.id == result.request.id and call.step == self.step and not call.done:
                self.calls[i] = dataclasses.replace(
                    call,
                    server=result.server or call.server,
                    result=result.result,
                    done=True,
                    error=result.error,
                    duration_s=result.duration_s,
                )
                return

    def finish(self) -> None:
        """The stream ended normally: flush held text, close the thinking, stop the clock."""
        held, self._held = self._held, ""
        if held and self._inside_think:
            self._think(held)
        elif held:
            self._say(held)
        self._end_thinking()
        if self.meter.output_tokens is None and self.chunks:
            self.meter.output_tokens = self.chunks  # the server sent no usage: one chunk is about one token
            self.meter.counted_by = "chunks"
        self.meter.finish()
        self.finished = True

    def cut(self, reason: str) -> None:
        """The app stopped reading at a limit (`reason`, e.g. "cut: the turn took longer than
        300 s"): keep what arrived, as a finished reply, then the notice."""
        self.finish()
        if self.meter.output_tokens is None or self.meter.output_tokens < self.chunks:
            self.meter.output_tokens = self.chunks  # a server's usage may lie: count what came
            self.meter.counted_by = "chunks"
        self.meter.finish_reason = "cut"
        self.cut_reason = reason

    def fail(self, failed: Failed) -> None:
        """The stream broke: keep what arrived, then the failure."""
        self._end_thinking()
        self.answer = (self.answer + self._held).rstrip()
        self._held = ""
        self.failed = failed

    def _split(self, text: str) -> None:
        while True:
            if self._inside_think:
                end = text.find(THINK_CLOSE)
                if end < 0:
                    break
                self._think(text[:end])
                text = text[end + len(THINK_CLOSE) :]
                self._inside_think = False
                self._end_thinking()
                continue
            start, end = text.find(THINK_OPEN), text.find(THINK_CLOSE)
            if end >= 0 and (start < 0 or end < start) and not self.thinking:
                # The template opened the block in the prompt: the reply so far was thinking.
                self.thinking_started = self.meter.first_token_at
                self._think(self.answer + text[:end])
                self.answer = ""
                text = text[end + len(THINK_CLOSE) :]
                self._end_thinking()
                continue
            if start < 0:
                break
            self._say(text[:start])
            text = text[start + len(THINK_OPEN) :]
            self._inside_think = True
        keep = _held_back(text)
        self._held = text[len(text) - keep :] if keep else ""
        body = text[: len(text) - keep]
        if body and self._inside_think:
            self._think(body)
        elif body:
            self._say(body)

    def _think(self, text: str) -> None:
        if self.thinking_started is None:
            self.thinking_started = self.clock()
        self.thinking += text

    def _say(self, text: str) -> None:
        if text.strip():
            self._end_thinking()  # the answer has begun
        self.answer += text

    def _end_thinking(self) -> None:
        if self.thinking_started is not None and self.thinking_ended is None:
            self.thinking_ended = self.clock()

    # -- figures and rendering
    @property
    def thinking_s(self) -> float | None:
        if self.thinking_started is None or self.thinking_ended is None:
            return None
        return self.thinking_ended - self.thinking_started

    def figures(self) -> dict[str, Any]:
        """The speed figures as plain data, for exports and compare mode."""
        m = self.meter
        return {
            "backend": self.source.backend.value,
            "model": self.source.model,
            "provider": self.source.provider,
            "cached": self.source.cached,
            "load_s": None if self.source.cached else self.source.load_s,
            "ttft_s": m.ttft_s,
            "waited_s": self.waited_s,
            "total_s": m.total_s,
            "tokens_per_s": m.tokens_per_s,
            "input_tokens": m.input_tokens,
            "output_tokens": m.output_tokens,
            "counted_by": m.counted_by or None,
            "finish_reason": m.finish_reason,
            "thinking_s": self.thinking_s,
            "seed": self.source.seed,
        }

    def footer(self) -> str:
        """One line, the figures first (a narrow window cuts the end, and the header already
        names the model): time to first token · tok/s · tokens · why it stopped · seed ·
        model · backend · cache."""
        src, m = self.source, self.meter
        parts = []
        if m.ttft_s is not None:
            parts.append(f"{m.ttft_s:.2f} s to first token")
        if self.waited_s is not None:
            parts.append(f"waited {self.waited_s:.1f} s")
        if m.tokens_per_s is not None:
            parts.append(f"{m.tokens_per_s:.1f} tok/s")
        if m.output_tokens is not None:
            approx = "~" if m.counted_by == "chunks" else ""
            tokens = f"{approx}{m.output_tokens} out"
            if m.input_tokens is not None:
                tokens = f"{m.input_tokens} in / {tokens}"
            parts.append(f"{tokens} ({m.counted_by})")
        if m.finish_reason:
            parts.append(f"stopped: {m.finish_reason}")
        if src.seed is not None:
            parts.append(f"seed {src.seed}")
        where = src.backend.label + (f" ({src.provider})" if src.backend is Backend.PROVIDERS else "")
        parts += [src.model, where, "cached" if src.cached else f"loaded in {src.load_s:.2f} s"]
        return f"{SPEED_MARK} " + " · ".join(parts)

    def view(self, show_speed: bool = True) -> ReplyView:
        """The reply so far, in display order: the notice, the thinking, the answer, then the
        cut or failure after what arrived, and the speed footer of a reply that ended (with
        `show_speed`; a failed one has none)."""
        out: list[Update] = [Notice(self.notice)] if self.notice else []
        if self.thinking.strip():
            out.append(Thinking(self.thinking.strip(), done=self.thinking_s is not None, duration_s=self.thinking_s))
        out.extend(self.calls)
        if self.answer.strip():
            out.append(Answer(self.answer.lstrip("\n")))  # text as the model wrote it
            if self.sources:
                out.append(Sources(self.sources))
        if self.cut_reason:
            out.append(Failed(CUT_TITLE, self.cut_reason, CUT_HINT, cut=True))
        if self.failed is not None:
            out.append(self.failed)
        elif show_speed and self.finished:
            out.append(Footer(self.footer(), self.figures()))
        return tuple(out)
