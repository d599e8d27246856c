"""The backend registry: one module per backend, each with `build` and `call_kwargs`.

Modules are imported on first use, so an endpoint-only start never imports torch.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from langchain_core.messages import BaseMessage

from hfchat.config import Backend, ChatSettings, ModelSpec
from hfchat.images import IMAGE_TASK

_MODULES = {
    Backend.PROVIDERS: "hfchat.backends.providers",
    Backend.ENDPOINT: "hfchat.backends.endpoint",
    Backend.LOCAL: "hfchat.backends.local",
}


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
    """

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None

    def __bool__(self) -> bool:
        return bool(self.text or self.reasoning or self.finish_reason or self.usage)


def joined_text(deltas: Iterator[Delta]) -> str:
    """All answer text of a stream, for callers that want the plain reply (tests, bench)."""
    return "".join(delta.text for delta in deltas)


class BackendModule(Protocol):
    def build(self, spec: ModelSpec, token: str | None) -> Any: ...

    def call_kwargs(self, settings: ChatSettings) -> dict[str, Any]: ...

    def stream(
        self, chat: Any, messages: Sequence[BaseMessage], settings: ChatSettings, cancel: threading.Event
    ) -> Iterator[Delta]: ...


_VISION_MODULE = "hfchat.backends.local_vision"
"""Local image-text-to-text models run transformers' pipeline directly, not through LangChain."""


def module_for(backend: Backend, task: str = "text-generation") -> BackendModule:
    """The module that builds and streams for this backend (and task, for local models)."""
    name = _VISION_MODULE if backend is Backend.LOCAL and task == IMAGE_TASK else _MODULES[backend]
    return cast(BackendModule, importlib.import_module(name))


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


def builder(spec: ModelSpec, token: str | None) -> Callable[[], Any]:
    """A zero-argument build function for the cache; the token stays in the closure."""
    return lambda: module_for(spec.backend, spec.task).build(spec, token)
