"""One chat turn: validate the settings, get the model from the cache, stream the reply.

Gradio-free: the UI and the API call `ChatService.respond`, which yields the reply so far
as a list of chat messages (thinking, answer, speed footer; see `hfchat.reply`). Errors
become a readable reply; the history is never touched.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from hfchat import net
from hfchat.backends import BackendModule, Delta, builder, module_for
from hfchat.cache import ModelCache
from hfchat.config import (
    DEFAULT_TIMEOUT_S,
    Backend,
    ChatSettings,
    GenerationSettings,
    InputLimits,
    ModelSpec,
    RetryPolicy,
    build_settings,
)
from hfchat.errors import (
    RECOVERABLE,
    ConfigError,
    EmptyReplyError,
    GenerationError,
    HFChatError,
    internal_error,
    translate,
)
from hfchat.images import file_paths
from hfchat.limits import RateLimiter
from hfchat.messages import (
    LOADING_MARK,
    build_messages,
    check_attachments,
    content_text,
    fit_history,
    image_count,
    trim_notice,
)
from hfchat.policy import DeploymentPolicy
from hfchat.reply import Message, Reply, ReplySource
from hfchat.tokens import fingerprint, redact, resolve_token

log = logging.getLogger(__name__)


@dataclass
class ChatService:
    """Holds the model cache and turns one request into a streamed reply."""

    cache: ModelCache[ModelSpec, Any] = field(default_factory=ModelCache)
    build: Callable[[ModelSpec, str | None], Callable[[], Any]] = builder
    timeout: int = DEFAULT_TIMEOUT_S
    policy: DeploymentPolicy = field(default_factory=DeploymentPolicy)
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(None))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: InputLimits = field(default_factory=InputLimits)
    endpoint_api_key: str = field(default="", repr=False)
    """The operator's key for their own endpoint (--endpoint-api-key); see `net.endpoint_key`."""

    def credential(self, values: Mapping[str, Any], hf_token: str | None, visitor_key: str | None) -> str | None:
        """The secret this turn's backend is built with, and whose fingerprint is in the cache
        key: the Hugging Face token, or for a custom endpoint only what `net.endpoint_key`
        allows there (never the HF token for a host that is not Hugging Face's)."""
        if values.get("backend") != Backend.ENDPOINT:
            return hf_token
        return net.endpoint_key(
            str(values.get("endpoint_url") or "").strip(),
            hf_token=hf_token,
            operator_url=self.policy.operator_endpoint,
            operator_key=self.endpoint_api_key,
            visitor_key=visitor_key or "",
        )

    def model_for(self, spec: ModelSpec, token: str | None) -> tuple[Any, bool]:
        """The built ChatHuggingFace for `spec`, and whether it came from the cache.

        The deployment's policy (local models, endpoint URLs) is checked on every build, before
        any download or request. Every request it makes goes out under `hfchat.net`'s rules.
        """
        net.install()
        build = self.build(spec, token)

        def checked_build() -> Any:
            self.policy.check(spec, token)
            return build()

        return self.cache.get(spec, checked_build)

    def stream(
        self,
        settings: ChatSettings,
        message: Any,
        history: Sequence[Mapping[str, Any]],
        token: str | None,
        cancel: threading.Event,
    ) -> Iterator[Delta]:
        """The reply's deltas (no UI notices); raises the stack's own errors."""
        turn = self.open_turn(settings, message, history, token)
        yield from _backend(settings).stream(turn.chat, turn.messages, settings, cancel)

    def open_turn(
        self, settings: ChatSettings, message: Any, history: Sequence[Mapping[str, Any]], token: str | None
    ) -> Turn:
        """The messages and the model for one turn, timing the model's build on a cache miss."""
        messages = build_messages(message, history, settings.system_prompt, settings.spec.task)
        started = time.perf_counter()
        chat, hit = self.model_for(settings.spec, token)
        load_s = time.perf_counter() - started
        images = sum(image_count(m.content) for m in messages)
        cache = "hit" if hit else f"miss (built in {load_s:.2f} s)"
        log.info("turn: %s, cache %s, %d image(s)", settings.spec.where, cache, images)
        return Turn(chat, messages, hit, load_s)

    def respond(
        self,
        message: Any,
        history: Sequence[Mapping[str, Any]],
        values: Mapping[str, Any],
        session_token: str | None,
        session: str | None = None,
        oauth_token: str | None = None,
        cancel: threading.Event | None = None,
        show_speed: bool = True,
        endpoint_key: str | None = None,
    ) -> Iterator[list[Message]]:
        """The reply so far, for the chat window: a loading notice, then the streamed reply
        (see `Reply.messages`), or a readable error (after any partial reply, which is kept).

        `session` (Gradio's session hash) is what the per-session rate limit counts.
        Setting `cancel` from another thread stops the generation even while this generator
        is blocked waiting for the backend (compare mode's Stop); closing it does too.
        `endpoint_key` is the visitor's own key for their custom endpoint (this session only)."""
        token = self.credential(values, resolve_token(session_token, oauth_token), endpoint_key)
        reply: Reply | None = None
        notice = ""
        settings: ChatSettings | None = None
        cancel = cancel or threading.Event()
        try:
            if not content_text(message).strip() and not file_paths(message):
                raise ConfigError(
                    "message: the message is empty.", "Type a message, then press Enter.", field="message"
                )
            self.limiter.admit(session)
            self.limits.check_text("message", content_text(message))
            self.limits.check_text("system_prompt", str(values.get("system_prompt") or ""))
            settings = build_settings(
                **values,
                token_fingerprint=fingerprint(token),
                timeout=self.timeout,
                retry=self.retry,
                local_dirs=self.limits.local_dirs,
            )
            check_attachments(message, settings.spec.task)
            history, dropped = fit_history(history, self.limits.max_history_chars)
            notice = trim_notice(dropped, self.limits.max_history_chars)
            if settings.spec.backend is Backend.LOCAL and settings.spec not in self.cache:
                yield [{"role": "assistant", "content": f"{notice}{loading_notice(settings.spec)}"}]
            turn = self.open_turn(settings, message, history, token)
            source = ReplySource.of(settings, getattr(turn.chat, "model_id", None), turn.cached, turn.load_s)
            reply = Reply(source, notice=notice)
            for delta in _backend(settings).stream(turn.chat, turn.messages, settings, cancel):
                reply.add(delta)
                if delta.text or delta.reasoning:
                    yield reply.messages(show_speed)
            reply.finish()
            _check_not_empty(reply)
            log.info("turn done: %s", reply.footer())
            yield reply.messages(show_speed)
        except Exception as exc:  # noqa: BLE001 - the one boundary of a turn, see below
            # Whatever a turn raises ends here as a message in the chat, after the partial reply,
            # and the history is untouched. An exception that escaped would reach Gradio, whose
            # generic "Error" badge loses the partial reply and wedges the browser tab (issue 10).
            # Errors of servers and libraries (RECOVERABLE) are translated; anything else is a bug
            # of ours, shown as an internal error whose reference finds its traceback in the log.
            # Every secret of this turn is masked, even those not sent (a server may know another).
            secrets = (token, session_token, oauth_token, endpoint_key, self.endpoint_api_key)
            yield _failure(exc, settings, secrets, reply, notice, show_speed)
        finally:
            cancel.set()


@dataclass(frozen=True)
class Turn:
    """What one turn runs on: the built chat model, the messages, and how the model was got."""

    chat: Any
    messages: list[BaseMessage]
    cached: bool
    load_s: float


def _failure(
    exc: Exception,
    settings: ChatSettings | None,
    secrets: Sequence[str | None],
    reply: Reply | None,
    notice: str,
    show: bool,
) -> list[Message]:
    """The chat window's messages for a turn that raised `exc`: the reply so far, then the error.

    Servers and libraries may echo a token in their errors: what is shown and logged is redacted."""
    error: HFChatError
    if isinstance(exc, RECOVERABLE):
        where = settings.spec.where if settings else "The backend"
        error = translate(exc, where, started=reply is not None and reply.chunks > 0)
        # An error we have no specific message for may be a bug: keep its traceback in the log.
        trace = "".join(traceback.format_exception(exc)) if isinstance(error, GenerationError) else ""
        log.warning("turn failed: %s: %s", type(exc).__name__, redact(f"{error.message}\n{trace}".strip(), *secrets))
    else:
        error = internal_error()
        trace = "".join(traceback.format_exception(exc))
        log.error("turn failed: internal error, reference %s:\n%s", error.reference, redact(trace, *secrets))
    shown = redact(error.markdown(), *secrets)
    if reply is None:
        return [{"role": "assistant", "content": notice + shown}]
    reply.fail(shown)
    return reply.messages(show)


def _backend(settings: ChatSettings) -> BackendModule:
    return module_for(settings.spec.backend, settings.spec.task)


def _check_not_empty(reply: Reply) -> None:
    if reply.answer.strip():
        return
    if reply.thinking.strip() and reply.meter.finish_reason == "length":
        raise EmptyReplyError(
            f"The model spent all {reply.meter.output_tokens} tokens thinking and gave no answer.",
            "Raise max_new_tokens so it has room to answer.",
        )
    raise EmptyReplyError(
        "The model finished without producing any text.",
        "Rephrase the message, raise max_new_tokens, or turn on do_sample.",
    )


def loading_notice(spec: ModelSpec) -> str:
    """Shown while a local model loads; says when it loads in 4-bit, so the UI shows the mode."""
    mode = f" in {spec.quantization.label}" if spec.quantization else ""
    return f"{LOADING_MARK} Loading `{spec.model}`{mode} (first use of this configuration)…"


def make_chat_fn(service: ChatService, defaults: Any) -> Callable[..., Iterator[list[Message]]]:
    """The function behind the chat box and the `/chat` API.

    Its parameter names are the API's names, so `Client.predict(message=..., temperature=...)`
    works; `defaults` (the CLI's AppOptions) fills what a direct caller leaves out.
    """
    d = defaults
    g = GenerationSettings()  # sampling defaults live in one place: the config model

    def chat(
        message: Any,
        history: list[dict[str, Any]],
        backend: str = d.backend.value,
        model: str = d.model,
        provider: str = d.provider,
        endpoint_url: str = d.endpoint_url,
        served_model: str = d.served_model,
        task: str = d.task,
        system_prompt: str = d.system_prompt,
        max_new_tokens: float = d.max_new_tokens,
        do_sample: bool = g.do_sample,
        temperature: float = g.temperature,
        top_p: float = g.top_p,
        top_k: float = g.top_k,
        repetition_penalty: float = g.repetition_penalty,
        seed: float | None = -1,
        load_in_4bit: bool = d.load_in_4bit,
        hf_token: str | None = None,
        endpoint_api_key: str | None = None,
        frequency_penalty: float = g.frequency_penalty,
        quant_type: str = d.quant_type,
        compute_dtype: str = d.compute_dtype,
        double_quant: bool = True,
        device: str = d.device,
        show_speed: bool = True,
        request: Any = None,
        oauth_token: Any = None,
    ) -> Iterator[list[Message]]:
        values = dict(
            backend=backend,
            model=model,
            provider=provider,
            endpoint_url=endpoint_url,
            served_model=served_model,
            task=task,
            system_prompt=system_prompt,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            repetition_penalty=repetition_penalty,
            frequency_penalty=frequency_penalty,
            seed=seed,
            load_in_4bit=load_in_4bit,
            quant_type=quant_type,
            compute_dtype=compute_dtype,
            double_quant=double_quant,
            device=device,
        )
        session = getattr(request, "session_hash", None)
        # Gradio injects the signed-in visitor's gr.OAuthToken (or None) here; app.py sets the hint.
        signed_in = getattr(oauth_token, "token", None)
        yield from service.respond(
            message, history, values, hf_token, session, signed_in, show_speed=show_speed, endpoint_key=endpoint_api_key
        )

    return chat
