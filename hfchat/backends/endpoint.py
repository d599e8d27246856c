"""Custom endpoints: HuggingFaceEndpoint(endpoint_url=...) to any OpenAI-compatible server
(TGI, vLLM, `transformers serve`, Inference Endpoints)."""

from __future__ import annotations

from hfchat import offline
from hfchat.backends.remote import RemoteChat, call_kwargs, stream
from hfchat.config import DEFAULT_TIMEOUT_S, ModelSpec

__all__ = ["build", "call_kwargs", "discover_served_model", "stream"]


def build(spec: ModelSpec, token: str | None) -> RemoteChat:
    from langchain_huggingface import HuggingFaceEndpoint

    url = spec.endpoint_url or ""
    offline.allow_endpoint(url)
    # HuggingFaceEndpoint fills its `model` field from endpoint_url itself.
    llm = HuggingFaceEndpoint(  # type: ignore[call-arg]
        endpoint_url=url,
        task=spec.task,
        huggingfacehub_api_token=token,
        timeout=spec.timeout or DEFAULT_TIMEOUT_S,
    )
    chat = RemoteChat(llm=llm)
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
