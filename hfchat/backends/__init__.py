"""The backend registry: one backend object per (backend, task) pair, as huggingface_hub
keeps one provider helper per (provider, task) (`PROVIDERS[provider][task]`).

Each object has `build`, `call_kwargs` and `stream` (`types.ChatBackend`). Their modules are
imported on first use, so an endpoint-only start never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from hfchat.backends.source import local_source
from hfchat.backends.types import ChatBackend
from hfchat.config import Backend, ModelSpec
from hfchat.errors import ConfigError
from hfchat.images import IMAGE_TASK

TEXT_TASK = "text-generation"

REGISTRY: dict[tuple[Backend, str], str] = {
    (Backend.PROVIDERS, TEXT_TASK): "hfchat.backends.providers:PROVIDERS",
    (Backend.PROVIDERS, IMAGE_TASK): "hfchat.backends.providers:PROVIDERS",
    (Backend.PROVIDERS, "text2text-generation"): "hfchat.backends.providers:PROVIDERS",
    (Backend.ENDPOINT, TEXT_TASK): "hfchat.backends.endpoint:ENDPOINT",
    (Backend.ENDPOINT, IMAGE_TASK): "hfchat.backends.endpoint:ENDPOINT",
    (Backend.ENDPOINT, "text2text-generation"): "hfchat.backends.endpoint:ENDPOINT",
    (Backend.LOCAL, TEXT_TASK): "hfchat.backends.local:LOCAL",
    # LangChain's HuggingFacePipeline runs only text tasks: image chats run transformers' pipeline.
    (Backend.LOCAL, IMAGE_TASK): "hfchat.backends.local_vision:VISION",
    # transformers 5 has no text2text-generation pipeline: the local build refuses it with
    # the installed version's own reason and the way out (a decoder-only model, an endpoint).
    (Backend.LOCAL, "text2text-generation"): "hfchat.backends.local:LOCAL",
}
"""Which object builds and streams each (backend, task) pair, as "module:name". Remote
backends send every task as an OpenAI chat completion. Modules are imported on first use
(`backend_for`), so an endpoint-only start never imports torch."""


def backend_for(backend: Backend, task: str = TEXT_TASK) -> ChatBackend:
    """The backend object for this pair; an unknown pair is a ConfigError that lists the valid ones."""
    where = REGISTRY.get((backend, task))
    if where is None:
        valid = ", ".join(f"{b.value}/{t}" for b, t in REGISTRY)
        raise ConfigError(
            f"task: the {backend.label} backend cannot run the task '{task}'.",
            f"Choose one of these backend/task pairs: {valid}.",
            field="task",
        )
    module, _, name = where.partition(":")
    return cast(ChatBackend, getattr(importlib.import_module(module), name))


if TYPE_CHECKING:  # mypy checks that every registered object is a ChatBackend; nothing is imported at run time
    from hfchat.backends import endpoint, local, local_vision, providers

    _REGISTERED: tuple[ChatBackend, ...] = (providers.PROVIDERS, endpoint.ENDPOINT, local.LOCAL, local_vision.VISION)


def builder(spec: ModelSpec, token: str | None) -> Callable[[], Any]:
    """A zero-argument build function for the cache; the token stays in the closure.

    A local model's source is resolved first (`source.local_source`): with the Hub out of
    reach and the model not on disk, the turn fails in seconds, before torch is imported."""

    def build() -> Any:
        if spec.backend is Backend.LOCAL:
            local_source(spec.model)
        return backend_for(spec.backend, spec.task).build(spec, token)

    return build
