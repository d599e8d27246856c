"""Inference Providers: HuggingFaceEndpoint(repo_id, provider="auto" | a named provider)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hfchat.backends.remote import RemoteBackend
from hfchat.config import DEFAULT_TIMEOUT_S, ModelSpec

if TYPE_CHECKING:
    from langchain_huggingface import HuggingFaceEndpoint


class ProvidersBackend(RemoteBackend):
    def _prepare_llm(self, spec: ModelSpec, token: str | None) -> HuggingFaceEndpoint:
        from langchain_huggingface import HuggingFaceEndpoint

        # HuggingFaceEndpoint fills its `model` field from repo_id itself.
        return HuggingFaceEndpoint(  # type: ignore[call-arg]
            repo_id=spec.model,
            provider=spec.provider,
            task=spec.task,
            huggingfacehub_api_token=token,
            timeout=spec.timeout or DEFAULT_TIMEOUT_S,
        )


PROVIDERS = ProvidersBackend()
