"""What Inference Providers and custom endpoints share: the OpenAI chat-completion call.

`call_kwargs` is where the stack's silent drops are fixed: ChatHuggingFace forwards call
keywords straight to `InferenceClient.chat_completion`, so every setting is sent here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from huggingface_hub.errors import HfHubHTTPError
from langchain_core.messages import BaseMessage, SystemMessage

from hfchat.backends import closing_stream
from hfchat.backends.chat_model import FoldingChat
from hfchat.config import Backend, ChatSettings
from hfchat.errors import retry_after_of, status_of

log = logging.getLogger(__name__)

# A server whose chat template refuses the system role answers with one of these
# (TGI 422, vLLM 400, transformers serve a bare 500).
_TEMPLATE_FAILURE_STATUSES = (400, 422, 500)

RETRY_STATUSES = (429, 503)
"""Rate limited, or the model is still loading: waiting can fix these, nothing else."""


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


def _deltas(chat: FoldingChat, messages: Sequence[BaseMessage], settings: ChatSettings) -> Iterator[str]:
    with closing_stream(chat.stream(list(messages), **call_kwargs(settings))) as chunks:
        for chunk in chunks:
            text = chunk.content if isinstance(chunk.content, str) else ""
            if text:
                yield text


def _first(
    chat: FoldingChat, messages: Sequence[BaseMessage], settings: ChatSettings, cancel: threading.Event
) -> tuple[str | None, Iterator[str]]:
    """Open the stream and read its first delta, retrying 429 and 503 as `settings.retry` says.

    This is the only place that retries: once a delta has been read the stream is handed
    on and never retried, so a reply is never duplicated or restarted.
    """
    attempt = 0
    while True:
        deltas = _deltas(chat, messages, settings)
        try:
            return next(deltas, None), deltas
        except HfHubHTTPError as exc:
            status = status_of(exc)
            wait = settings.retry.delay(attempt, retry_after_of(exc)) if status in RETRY_STATUSES else None
            if wait is None:
                raise
            attempt += 1
            log.info("HTTP %s before the first token; retry %d in %.2f s", status, attempt, wait)
            if cancel.wait(wait):
                raise  # Stop pressed while waiting: no point in retrying


def _may_refuse_system(exc: HfHubHTTPError, chat: FoldingChat, messages: Sequence[BaseMessage]) -> bool:
    status = exc.response.status_code if exc.response is not None else None
    has_system = any(isinstance(m, SystemMessage) for m in messages)
    return has_system and not chat.fold_system and status in _TEMPLATE_FAILURE_STATUSES


def stream(
    chat: FoldingChat, messages: Sequence[BaseMessage], settings: ChatSettings, cancel: threading.Event
) -> Iterator[str]:
    """Text deltas of the reply; leaving the loop closes the HTTP stream, which stops the server.

    429 and 503 before the first token are retried with backoff (see `_first`).
    If the server fails before the first token and the turn has a system prompt, it is
    tried once more with the system prompt folded into the first user turn; if that works,
    the cached client keeps folding. Otherwise the original error is raised.
    """
    try:
        first, deltas = _first(chat, messages, settings, cancel)
    except HfHubHTTPError as exc:
        if not _may_refuse_system(exc, chat, messages):
            raise
        retry = chat.model_copy(update={"fold_system": True})
        try:
            first, deltas = _first(retry, messages, settings, cancel)
        except HfHubHTTPError:
            raise exc from None
        log.info("the server refused the system role; folding it into the first user turn from now on")
        chat.fold_system = True
    if first is None:
        return
    yield first
    with closing_stream(deltas):
        for text in deltas:
            if cancel.is_set():
                return
            yield text
