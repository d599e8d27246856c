"""Inference Providers and custom OpenAI-compatible endpoints, through HuggingFaceEndpoint.

`call_kwargs` is where the stack's silent drops are fixed: ChatHuggingFace forwards call
keywords straight to `InferenceClient.chat_completion`, so every setting is sent here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from hfchat import offline
from hfchat.backends import closing_stream
from hfchat.config import DEFAULT_TIMEOUT_S, Backend, ChatSettings, ModelSpec


def build(spec: ModelSpec, token: str | None) -> Any:
    from langchain_huggingface import ChatHuggingFace, HuggingFaceEndpoint

    timeout = spec.timeout or DEFAULT_TIMEOUT_S
    # HuggingFaceEndpoint fills its `model` field from repo_id or endpoint_url itself.
    if spec.backend is Backend.PROVIDERS:
        llm = HuggingFaceEndpoint(  # type: ignore[call-arg]
            repo_id=spec.model,
            provider=spec.provider,
            task=spec.task,
            huggingfacehub_api_token=token,
            timeout=timeout,
        )
        return ChatHuggingFace(llm=llm)
    url = spec.endpoint_url or ""
    offline.allow_endpoint(url)
    llm = HuggingFaceEndpoint(  # type: ignore[call-arg]
        endpoint_url=url,
        task=spec.task,
        huggingfacehub_api_token=token,
        timeout=timeout,
    )
    chat = ChatHuggingFace(llm=llm)
    # Without this the request says model="dummy", which vLLM and a pinned
    # `transformers serve` reject; a served name given per call still wins.
    served = discover_served_model(url)
    if served:
        chat.model_id = served
    return chat


def _base_url(endpoint_url: str) -> str:
    base = endpoint_url.rstrip("/")
    for suffix in ("/chat/completions", "/v1"):
        base = base.removesuffix(suffix)
    return base


def discover_served_model(endpoint_url: str, timeout: float = 3.0) -> str | None:
    """The server's only model from GET /v1/models, or None when it lists none or several.

    Plain httpx, not huggingface_hub, so it is neither blocked by offline mode nor sent a token.
    """
    import httpx

    response = httpx.get(f"{_base_url(endpoint_url)}/v1/models", timeout=timeout)
    if response.status_code in (404, 405):
        return None  # the server has no model list
    response.raise_for_status()  # a 5xx or refused connection is an error, not a missing name
    try:
        models = response.json().get("data") or []
    except (ValueError, AttributeError):
        return None
    ids = [m.get("id") for m in models if isinstance(m, dict) and m.get("id")]
    return ids[0] if len(ids) == 1 else None


def call_kwargs(settings: ChatSettings) -> dict[str, Any]:
    """The OpenAI chat-completion fields for this turn, each on the scale the server expects.

    Greedy is temperature 0 (servers map it to greedy decoding); top_p applies only when
    sampling; the penalty is OpenAI's additive `frequency_penalty` (neutral 0), not the
    local multiplicative `repetition_penalty` (neutral 1) that ChatHuggingFace would drop.
    """
    gen = settings.generation
    kwargs: dict[str, Any] = {"max_tokens": gen.max_new_tokens}
    if gen.do_sample:
        kwargs["temperature"] = gen.temperature
        kwargs["top_p"] = gen.top_p
    else:
        kwargs["temperature"] = 0.0
    if gen.seed is not None:
        kwargs["seed"] = gen.seed
    if gen.frequency_penalty != 0:
        kwargs["frequency_penalty"] = gen.frequency_penalty
    if settings.spec.backend is Backend.ENDPOINT and settings.served_model:
        kwargs["model"] = settings.served_model
    return kwargs


def stream(
    chat: Any, messages: Sequence[BaseMessage], settings: ChatSettings, cancel: threading.Event
) -> Iterator[str]:
    """Text deltas of the reply; leaving the loop closes the HTTP stream, which stops the server."""
    with closing_stream(chat.stream(list(messages), **call_kwargs(settings))) as chunks:
        for chunk in chunks:
            if cancel.is_set():
                return
            text = chunk.content if isinstance(chunk.content, str) else ""
            if text:
                yield text
