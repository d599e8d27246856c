"""The backend registry: one module per backend, each with `build` and `call_kwargs`.

Modules are imported on first use, so an endpoint-only start never imports torch.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, cast

from langchain_core.messages import BaseMessage

from hfchat.config import Backend, ChatSettings, ModelSpec
from hfchat.images import IMAGE_TASK

_COMMON = frozenset(
    {"model", "task", "system_prompt", "max_new_tokens", "do_sample", "temperature", "top_p", "seed", "hf_token"}
)

CONTROLS: dict[Backend, frozenset[str]] = {
    Backend.PROVIDERS: _COMMON | {"provider", "frequency_penalty"},
    Backend.ENDPOINT: _COMMON | {"endpoint_url", "served_model", "frequency_penalty"},
    Backend.LOCAL: _COMMON
    | {"top_k", "repetition_penalty", "load_in_4bit", "quant_type", "compute_dtype", "double_quant", "device"},
}
"""Which sidebar controls reach each backend; the others are hidden for it."""

ALL_CONTROLS = frozenset().union(*CONTROLS.values())

_MODULES = {
    Backend.PROVIDERS: "hfchat.backends.providers",
    Backend.ENDPOINT: "hfchat.backends.endpoint",
    Backend.LOCAL: "hfchat.backends.local",
}


class BackendModule(Protocol):
    def build(self, spec: ModelSpec, token: str | None) -> Any: ...

    def call_kwargs(self, settings: ChatSettings) -> dict[str, Any]: ...

    def stream(
        self, chat: Any, messages: Sequence[BaseMessage], settings: ChatSettings, cancel: threading.Event
    ) -> Iterator[str]: ...


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
