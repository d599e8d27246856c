"""One assistant reply as it streams: its thinking, its answer, and its speed figures.

Gradio-free: `Reply` takes the backends' deltas and renders Gradio-6 message dicts (a
collapsible "Thinking" message, the answer, a speed footer), so the UI, the `/chat` API,
compare mode and exports all show the same thing, and it is tested with plain data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfchat.backends.types import THINK_CLOSE, THINK_OPEN, Delta
from hfchat.config import Backend, ChatSettings, display_url
from hfchat.errors import ERROR_MARK
from hfchat.messages import FOOTER_ID, SPEED_MARK
from hfchat.safe_markdown import safe_images
from hfchat.speed import SpeedMeter

CUT_TITLE = "Reply cut short"
THINKING_TITLE = "Thinking"

Message = dict[str, Any]
"""A Gradio-6 chat message: role, content and optional metadata."""


def answer_text(messages: list[Message]) -> str:
    """The answer (or notice, or error) among a reply's messages: the one without metadata.

    For callers that want the plain reply, such as `/chat` API clients and the tests.
    """
    return "\n\n".join(str(m["content"]) for m in messages if not m.get("metadata"))


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
        return cls(spec.backend, model, spec.provider, cached, load_s)


@dataclass
class Reply:
    """Accumulates one reply's deltas; `messages()` renders it at any point of the stream.

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
    error: str = ""
    cut_reason: str = ""
    """Why the app stopped reading the stream early (a limit), shown after what arrived."""
    chunks: int = 0
    thinking_started: float | None = None
    thinking_ended: float | None = None
    finished: bool = False
    _inside_think: bool = False
    _held: str = ""

    def __post_init__(self) -> None:
        self.meter = SpeedMeter(clock=self.clock)

    # -- taking deltas
    def add(self, delta: Delta) -> None:
        if delta.text or delta.reasoning:
            self.meter.first_token()
            self.chunks += 1
        if delta.reasoning:
            self._think(delta.reasoning)
        if delta.text:
            self._split(self._held + delta.text)
        if delta.usage is not None:
            self.meter.input_tokens = delta.usage.input_tokens
            self.meter.output_tokens = delta.usage.output_tokens
            self.meter.counted_by = delta.usage.counted_by
        if delta.finish_reason:
            self.meter.finish_reason = delta.finish_reason

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

    def notice_markdown(self) -> str:
        """The cut notice; like an error, it starts a line with the error mark, so it is
        never sent back to the model (see `hfchat.messages.strip_error`)."""
        if not self.cut_reason:
            return ""
        return f"{ERROR_MARK} **{CUT_TITLE}.** {self.cut_reason}\n\nThe text above is what arrived."

    def fail(self, markdown: str) -> None:
        """The stream broke: keep what arrived, then the error notice."""
        self._end_thinking()
        self.answer = (self.answer + self._held).rstrip()
        self._held = ""
        self.error = markdown

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
            "total_s": m.total_s,
            "tokens_per_s": m.tokens_per_s,
            "input_tokens": m.input_tokens,
            "output_tokens": m.output_tokens,
            "counted_by": m.counted_by or None,
            "finish_reason": m.finish_reason,
            "thinking_s": self.thinking_s,
        }

    def footer(self) -> str:
        """One line: model · backend · cache · time to first token · tok/s · tokens · why it stopped."""
        src, m = self.source, self.meter
        where = src.backend.label + (f" ({src.provider})" if src.backend is Backend.PROVIDERS else "")
        parts = [src.model, where, "cached" if src.cached else f"loaded in {src.load_s:.2f} s"]
        if m.ttft_s is not None:
            parts.append(f"{m.ttft_s:.2f} s to first token")
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
        return f"{SPEED_MARK} " + " · ".join(parts)

    def messages(self, show_speed: bool = True) -> list[Message]:
        """The reply so far as chat messages; thoughts and footer carry metadata, so they
        are never sent back to the model (see `hfchat.messages.history_to_messages`)."""
        out: list[Message] = []
        if self.thinking.strip():
            metadata: dict[str, Any] = {"title": THINKING_TITLE, "status": "pending"}
            if self.thinking_s is not None:
                metadata = {"title": THINKING_TITLE, "status": "done", "duration": round(self.thinking_s, 2)}
            out.append({"role": "assistant", "content": safe_images(self.thinking.strip()), "metadata": metadata})
        answer = self.answer.lstrip("\n") if self.answer.strip() else ""  # text as the model wrote it
        for notice in (self.notice_markdown(), self.error):
            if notice:
                answer = f"{answer}\n\n{notice}" if answer else notice
        if answer or self.notice:  # remote images become links: showing a reply fetches nothing
            out.append({"role": "assistant", "content": safe_images(self.notice + answer)})
        if show_speed and self.finished and not self.error:
            out.append({"role": "assistant", "content": self.footer(), "metadata": {"id": FOOTER_ID}})
        return out
