"""What every backend and the reply model share: the streamed `Delta`, its `Usage`, the think
tags, and the `ChatBackend` protocol.

A leaf module (it imports nothing of hfchat at run time), so `hfchat.reply`, the backends and
the chat service all import from here without importing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

    from hfchat.config import ChatSettings, ModelSpec
    from hfchat.fairqueue import DeviceQueues
    from hfchat.tools.types import ToolCallChunk, ToolSpec

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def ends_inside_think(prompt: str) -> bool:
    """True when a chat template opened a think block for the reply (DeepSeek-R1 does)."""
    return prompt.rstrip().endswith(THINK_OPEN)


@dataclass(frozen=True)
class Usage:
    """Token counts of one reply, and who counted them: "server" (the usage the server
    sent) or "tokenizer" (the local model's own token ids)."""

    input_tokens: int | None
    output_tokens: int | None
    counted_by: str


@dataclass(frozen=True)
class Delta:
    """One piece of a streamed reply, as every backend yields it.

    `text` is answer text (which may still hold `<think>` tags; the reply model splits
    them out), `reasoning` is what providers send in a separate `reasoning_content` field.
    The last delta usually carries `finish_reason` ("stop", "length") and `usage`.
    A local generation queued behind another on its device says so before any text:
    `waiting_s` (seconds so far, repeated about once a second while it waits), then
    `waited_s` (the whole wait) when its turn comes, so its time to first token leaves
    the wait out. `tool_calls` are pieces of the tool calls the model makes
    (`hfchat.tools.types.joined_calls` puts them together when the stream ends).
    """

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    waiting_s: float | None = None
    waited_s: float | None = None
    tool_calls: tuple[ToolCallChunk, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.text or self.reasoning or self.finish_reason or self.usage or self.tool_calls)


def joined_text(deltas: Iterator[Delta]) -> str:
    """All answer text of a stream, for callers that want the plain reply (tests, bench)."""
    return "".join(delta.text for delta in deltas)


T = TypeVar("T")


@contextmanager
def closing_stream(stream: Iterator[T]) -> Iterator[Iterator[T]]:
    """Close a LangChain stream as soon as we stop reading it (Stop), not when it is
    garbage-collected: that is what ends the HTTP request or the generate thread."""
    try:
        yield stream
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


class ChatBackend(Protocol):
    """One (backend, task) pair of the registry (`hfchat.backends.backend_for`).

    `build` makes the chat model the cache keeps (network or weights; once per ModelSpec),
    `call_kwargs` turns one turn's settings into what that model takes per call, and `stream`
    runs one turn. `queues` are the chat service's device queues: a local generation waits
    there for its turn on the device; remote backends never queue. `tools` are offered to the
    model for this call (none: a plain chat); its calls come back as `Delta.tool_calls`.
    """

    def build(self, spec: ModelSpec, token: str | None) -> Any: ...

    def call_kwargs(self, settings: ChatSettings) -> dict[str, Any]: ...

    def supports_tools(self, chat: Any) -> bool:
        """Whether this built model can be offered tools (a local chat template that renders them)."""
        ...

    def stream(
        self,
        chat: Any,
        messages: Sequence[BaseMessage],
        settings: ChatSettings,
        cancel: threading.Event,
        queues: DeviceQueues,
        tools: Sequence[ToolSpec] = (),
    ) -> Iterator[Delta]: ...
