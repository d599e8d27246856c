"""Custom endpoints: HuggingFaceEndpoint(endpoint_url=...) to any OpenAI-compatible server
(TGI, vLLM, llama.cpp, `transformers serve`, Inference Endpoints)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from hfchat import net
from hfchat.backends.remote import RemoteBackend, RemoteChat
from hfchat.config import DEFAULT_TIMEOUT_S, ChatSettings, ModelSpec

if TYPE_CHECKING:
    from langchain_huggingface import HuggingFaceEndpoint

log = logging.getLogger(__name__)


class EndpointBackend(RemoteBackend):
    """`key` (the token argument) is what this endpoint's requests carry, already decided by
    `net.endpoint_key` (never the Hugging Face token for a host that is not Hugging Face's), or None."""

    def _prepare_llm(self, spec: ModelSpec, key: str | None) -> HuggingFaceEndpoint:
        from huggingface_hub import AsyncInferenceClient, InferenceClient
        from langchain_huggingface import HuggingFaceEndpoint

        url = spec.endpoint_url or ""
        timeout = spec.timeout or DEFAULT_TIMEOUT_S
        net.register_endpoint(url, key)
        # HuggingFaceEndpoint fills its `model` field from endpoint_url itself.
        llm = HuggingFaceEndpoint(  # type: ignore[call-arg]
            endpoint_url=url, task=spec.task, huggingfacehub_api_token=key, timeout=timeout
        )
        # LangChain gives a non-HF URL api_key=None (and a *.hf.space URL the HF token), and
        # huggingface_hub turns None into the machine's own token: the clients get an explicit
        # key instead, "none" included.
        explicit = key or net.NO_CREDENTIALS
        llm.client = InferenceClient(model=url, timeout=timeout, api_key=explicit)
        llm.async_client = AsyncInferenceClient(model=url, timeout=timeout, api_key=explicit)
        return llm

    def _prepare_chat(self, chat: RemoteChat, spec: ModelSpec, key: str | None) -> None:
        # Without this the request says model="dummy", which vLLM and a pinned
        # `transformers serve` reject; a served name given per call still wins.
        served = discover_served_model(spec.endpoint_url or "", key, spec.timeout or DEFAULT_TIMEOUT_S)
        if served:
            chat.model_id = served

    def _prepare_call(self, kwargs: dict[str, Any], settings: ChatSettings) -> dict[str, Any]:
        if settings.served_model:
            kwargs["model"] = settings.served_model
        return kwargs


ENDPOINT = EndpointBackend()


def models_url(endpoint_url: str) -> str:
    """The server's GET /v1/models, built from the parsed URL: the path loses a trailing
    /chat/completions or /v1, and the query (some servers take a key there) stays a query."""
    parts = urlsplit(endpoint_url.strip())
    path = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/v1"):
        path = path.removesuffix(suffix)
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/v1/models", parts.query, ""))


def served_models(endpoint_url: str, key: str | None, timeout: float) -> list[Any] | None:
    """The entries of the server's GET /v1/models (None when it has no model list: 404, 405).

    Through the guarded shared client (`hfchat.net`): the same pinning, redirect and
    credential rules as the chat requests, and offline mode does not block it. Raises what
    httpx raises for a slow, refused or broken answer, ValueError for a body that is not JSON."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = net.session().get(models_url(endpoint_url), headers=headers, timeout=timeout)
    if response.status_code in (404, 405):
        return None  # the server has no model list
    response.raise_for_status()
    body = response.json()
    models = body.get("data") if isinstance(body, dict) else None
    return list(models) if isinstance(models, list) else []


def discover_served_model(endpoint_url: str, key: str | None, timeout: float) -> str | None:
    """The server's only model from GET /v1/models (`served_models`), or None when it lists
    none or several.

    It runs once per built client (the name is cached with it), within the turn's own
    `timeout`. A list that is slow or broken never fails the turn: the turn goes on without a
    name (a served name set in the settings is sent anyway); a server that can't be reached at
    all still fails, as its chat request would, with the message that says so.
    """
    import httpx

    try:
        models = served_models(endpoint_url, key, timeout) or []
    except (httpx.TimeoutException, httpx.HTTPStatusError, ValueError, AttributeError) as exc:
        log.warning("GET /v1/models gave no served model name (%s); the turn goes on without one", type(exc).__name__)
        return None
    ids = [m.get("id") for m in models if isinstance(m, dict) and m.get("id")]
    return ids[0] if len(ids) == 1 else None
