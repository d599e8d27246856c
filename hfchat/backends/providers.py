"""Inference Providers: HuggingFaceEndpoint(repo_id, provider="auto" | a named provider)."""

from __future__ import annotations

from hfchat.backends.remote import RemoteChat, call_kwargs, stream
from hfchat.config import DEFAULT_TIMEOUT_S, ModelSpec

__all__ = ["build", "call_kwargs", "stream"]


def build(spec: ModelSpec, token: str | None) -> RemoteChat:
    from langchain_huggingface import HuggingFaceEndpoint

    # HuggingFaceEndpoint fills its `model` field from repo_id itself.
    llm = HuggingFaceEndpoint(  # type: ignore[call-arg]
        repo_id=spec.model,
        provider=spec.provider,
        task=spec.task,
        huggingfacehub_api_token=token,
        timeout=spec.timeout or DEFAULT_TIMEOUT_S,
    )
    return RemoteChat(llm=llm)
