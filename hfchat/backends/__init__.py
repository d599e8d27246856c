"""The backend registry: one module per backend, each with `build` and `call_kwargs`.

Modules are imported on first use, so an endpoint-only start never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from hfchat.backends.types import ChatBackend
from hfchat.config import Backend, ModelSpec
from hfchat.images import IMAGE_TASK

_COMMON = frozenset(
    {"model", "task", "system_prompt", "max_new_tokens", "do_sample", "temperature", "top_p", "seed", "hf_token"}
)

CONTROLS: dict[Backend, frozenset[str]] = {
    Backend.PROVIDERS: _COMMON | {"provider", "frequency_penalty"},
    Backend.ENDPOINT: _COMMON | {"endpoint_url", "served_model", "frequency_penalty", "endpoint_api_key"},
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


_VISION_MODULE = "hfchat.backends.local_vision"
"""Local image-text-to-text models run transformers' pipeline directly, not through LangChain."""


def module_for(backend: Backend, task: str = "text-generation") -> ChatBackend:
    """The module that builds and streams for this backend (and task, for local models)."""
    name = _VISION_MODULE if backend is Backend.LOCAL and task == IMAGE_TASK else _MODULES[backend]
    return cast(ChatBackend, importlib.import_module(name))


def builder(spec: ModelSpec, token: str | None) -> Callable[[], Any]:
    """A zero-argument build function for the cache; the token stays in the closure."""
    return lambda: module_for(spec.backend, spec.task).build(spec, token)
