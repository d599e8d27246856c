"""One chat turn: validate the settings, get the model from the cache, stream the reply.

Gradio-free: the UI and the API call `ChatService.respond`, which yields the reply so far
as typed updates (`hfchat.updates`: loading, thinking, answer, speed footer; see
`hfchat.reply`). Errors become a `Failed` after what arrived; the history is never
touched. Every reply is bounded (`Bounded`): in tokens, characters, total time and time
between chunks, whatever the server does.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage

from hfchat import hub, net
from hfchat.backends import backend_for, builder
from hfchat.backends.types import ChatBackend, Delta, closing_stream
from hfchat.cache import ModelCache
from hfchat.config import (
    DEFAULT_TIMEOUT_S,
    Backend,
    ChatSettings,
    InputLimits,
    ModelSpec,
    RetryPolicy,
    build_settings,
)
from hfchat.context import (
    ContextLookup,
    ContextUse,
    ContextWindow,
    EstimateCounter,
    Fitted,
    TokenCounter,
    fit_to_window,
    lowered_notice,
    reply_room,
    token_trim_notice,
)
from hfchat.continuation import Continuation, continued_messages
from hfchat.deadline import DeadlineExceeded, io_budget, io_deadline
from hfchat.documents import MAX_DOCUMENTS, Document, check_uploaded, describe, extract, remove_uploads, to_data
from hfchat.embeddings import EmbeddingRanker
from hfchat.errors import (
    RECOVERABLE,
    ConfigError,
    EmptyReplyError,
    GenerationError,
    HFChatError,
    InputError,
    ReplyTooLargeError,
    internal_error,
    translate,
)
from hfchat.fairqueue import DeviceQueues
from hfchat.images import file_paths
from hfchat.limits import (
    CHARS_PER_TOKEN,
    DEFAULT_STALL_TIMEOUT_S,
    DEFAULT_TURN_TIMEOUT_S,
    DEFAULT_TURNS_PER_CLIENT,
    ActiveTurns,
    RateLimiter,
    client_address,
)
from hfchat.loading import LoadProgress, progress_of, ticking
from hfchat.messages import (
    build_messages,
    check_attachments,
    content_text,
    conversation_documents,
    document_paths,
    fit_history,
    image_count,
    trim_notice,
    with_documents,
)
from hfchat.policy import DeploymentPolicy
from hfchat.reply import Reply, ReplySource
from hfchat.retrieval import Plan, Ranker, plan
from hfchat.settings import API_ORDER, SETTINGS
from hfchat.tokens import Fingerprinter, redact, resolve_token
from hfchat.tools.loop import CallResult, run_calls
from hfchat.tools.registry import Offered, ToolChoice, ToolRegistry
from hfchat.tools.types import Tool, ToolCallRequest
from hfchat.updates import Attached, Loading, Notice, ReplyView, Waiting

log = logging.getLogger(__name__)


@dataclass
class ChatService:
    """Holds the model cache and turns one request into a streamed reply."""

    cache: ModelCache[ModelSpec, Any] = field(default_factory=ModelCache)
    build: Callable[[ModelSpec, str | None], Callable[[], Any]] = builder
    timeout: int = DEFAULT_TIMEOUT_S
    policy: DeploymentPolicy = field(default_factory=DeploymentPolicy)
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(None))
    active: ActiveTurns = field(default_factory=lambda: ActiveTurns(DEFAULT_TURNS_PER_CLIENT))
    """Turns running at once per client address, on a public deployment (--max-turns-per-client)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: InputLimits = field(default_factory=InputLimits)
    turn_timeout: float = DEFAULT_TURN_TIMEOUT_S
    """A turn's total deadline in seconds (--turn-timeout)."""
    stall_timeout: float = DEFAULT_STALL_TIMEOUT_S
    """The longest a started reply may go without a chunk (--stall-timeout)."""
    endpoint_api_key: str = field(default="", repr=False)
    """The operator's key for their own endpoint (--endpoint-api-key); see `net.endpoint_key`."""
    queues: DeviceQueues = field(default_factory=DeviceQueues)
    """Where local generations take turns per device (--local-concurrency slots each)."""
    fingerprint: Fingerprinter = field(default_factory=Fingerprinter, repr=False)
    """Tells tokens apart in the cache's keys without holding them."""
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    """The tools turns may offer the model (--tools, --mcp, --mcp-stdio, a visitor's MCP URL)."""
    max_tool_steps: int = 5
    """Rounds of tool calls in one turn (--max-tool-steps); the next model call offers none."""
    tool_timeout: float = 30.0
    """The longest one tool call may run (--tool-timeout)."""
    upload_root: str | None = None
    """The folder the web app receives uploads in: documents are read only from there, and
    removed after their turn (None: a direct caller's own paths, read and left alone)."""
    context: ContextLookup = field(default_factory=ContextLookup, repr=False)
    """Context windows and token counters per model (`hfchat.context`), for the meter and trimming."""
    embeddings: EmbeddingRanker | None = None
    """Ranks a long document's chunks by embeddings (--embeddings); None: BM25 (`hfchat.retrieval`)."""

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
            hub.check_provider(spec, token)  # a named provider must serve the model live (issue 16)
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
        """The reply's deltas (no UI notices), within the turn's bounds; raises the stack's own errors."""
        started = time.monotonic()
        turn = self.open_turn(settings, message, history, token, self.turn_deadline(settings, started))
        yield from self.bounded(turn, settings, cancel, started)

    def turn_deadline(self, settings: ChatSettings, started: float) -> float | None:
        """When a turn that began at `started` must end, for the network I/O of opening it.

        A remote turn's clock starts with the request (the client's build also calls the
        server); a local model's first load is not part of its turn (None)."""
        return None if settings.spec.backend is Backend.LOCAL else started + self.turn_timeout

    def bounded(
        self,
        turn: Turn,
        settings: ChatSettings,
        cancel: threading.Event,
        started: float,
        tools: Mapping[str, Tool] | None = None,
    ) -> Bounded:
        """The turn's stream from its backend, within max_new_tokens and the deadlines.

        A remote server must send its first chunk within --timeout of the request, however
        it trickles bytes; a local generation may wait longer for its turn on the device."""
        opened = time.monotonic()
        local = settings.spec.backend is Backend.LOCAL
        if local:
            started = opened  # the model is ready now: generation starts the clock
        # each tool by the name this turn offers it under (MCP tools may be renamed to fit or be unique)
        specs = [dataclasses.replace(tool.spec, name=name) for name, tool in (tools or {}).items()]
        deltas = _backend(settings).stream(turn.chat, turn.messages, settings, cancel, self.queues, tools=specs)
        deadlines = Deadlines(
            turn_end=started + self.turn_timeout,
            turn_timeout=self.turn_timeout,
            stall_timeout=self.stall_timeout,
            first_by=None if local else opened + self.timeout,
            first_timeout=self.timeout,
        )
        return Bounded(deltas, settings.generation.max_new_tokens, deadlines, cancel)

    def open_turn(
        self,
        settings: ChatSettings,
        message: Any,
        history: Sequence[Mapping[str, Any]],
        token: str | None,
        deadline: float | None = None,
        tools: bool = False,
    ) -> Turn:
        """The messages and the model for one turn, timing the model's build on a cache miss;
        the build's network I/O must finish by `deadline` (time.monotonic()). With `tools`,
        earlier tool calls go to the model as tool messages (else as text)."""
        messages = build_messages(message, history, settings.system_prompt, settings.spec.task, tools)
        started = time.perf_counter()
        # A remote build only asks for small answers (a model list, a provider mapping); a
        # local one may download weights, which its deadline (None) and budget leave alone.
        budget = None if deadline is None else BUILD_BUDGET_BYTES
        with io_deadline(deadline), io_budget(budget):
            chat, hit = self.model_for(settings.spec, token)
        load_s = time.perf_counter() - started
        images = sum(image_count(m.content) for m in messages)
        cache = "hit" if hit else f"miss (built in {load_s:.2f} s)"
        log.info("turn: %s, cache %s, %d image(s)", settings.spec.where, cache, images)
        return Turn(chat, messages, hit, load_s)

    def loading_turn(
        self,
        settings: ChatSettings,
        message: Any,
        history: Sequence[Mapping[str, Any]],
        token: str | None,
        notice: str,
        cancel: threading.Event,
        tools: bool = False,
    ) -> Generator[ReplyView, None, Turn | None]:
        """`open_turn` for a model that loads first (seconds to minutes): the load runs in a
        thread while this yields how far it got (`Loading`: seconds, then the stage and share
        that huggingface_hub and transformers report), at least once a second. Returns the
        turn, or None when `cancel` was set (the load goes on, into the cache); closing this
        (Stop) ends the wait at once. A local turn's deadline starts after the load."""
        spec, head = settings.spec, _notices(notice)
        loading = loading_notice(spec)

        def view(elapsed_s: float) -> ReplyView:
            return (*head, loading_progress(loading, elapsed_s, progress_of(spec)))

        yield view(0.0)
        return (
            yield from ticking(lambda: self.open_turn(settings, message, history, token, None, tools), view, cancel)
        )

    def offer_tools(
        self, choice: ToolChoice, settings: ChatSettings, session: str | None, hf_token: str | None
    ) -> Offered:
        """The tools this turn offers (none for compare mode's sides and for a choice of none).
        A visitor's MCP URL is checked against the deployment's policy before it is reached;
        a refused tool or URL is a ConfigError, a server that fails a notice."""
        if not choice.any:
            return Offered()
        return self.tools.offered(choice, session, hf_token)

    def run_tools(
        self,
        reply: Reply,
        requests: Sequence[ToolCallRequest],
        tools: Mapping[str, Tool],
        cancel: threading.Event,
        secrets: Sequence[str | None],
        show_speed: bool,
    ) -> Generator[ReplyView, None, dict[str, CallResult]]:
        """Run one round of the model's tool calls: each shows pending, then done with its
        result, as it ends (`hfchat.tools.loop.run_calls`). Returns the results by call id;
        stops early when `cancel` is set (Stop). Arguments and results are redacted of every
        secret of the turn before they are shown, kept or sent back."""

        def clean(text: str) -> str:
            return redact(text, *secrets)

        for request in requests:
            server = tools[request.name].spec.server if request.name in tools else ""
            reply.call_pending(request, server, clean(request.arguments_text))
        yield reply.view(show_speed)
        results: dict[str, CallResult] = {}
        for result in run_calls(requests, tools, cancel, self.tool_timeout, clean):
            log.info(
                "tool %s (%s): %s in %.2f s",
                result.request.name,
                result.server or "-",
                "error" if result.error else "done",
                result.duration_s,
            )
            reply.call_done(result)
            results[result.request.id] = result
            yield reply.view(show_speed)
        return results

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
        client: str | None = None,
        tools: ToolChoice | None = None,
        continue_from: Continuation | None = None,
    ) -> Iterator[ReplyView]:
        """One turn (`_turn`): each view starts with the chips of the documents this message
        attached, once they are read. The message's document files are removed when the turn
        ends, however it ends: what is kept is the text, in the chips' data."""
        chips: list[Attached] = []
        try:
            with closing(
                self._turn(
                    message, history, values, session_token, session, oauth_token,
                    cancel, show_speed, endpoint_key, client, tools, chips, continue_from,
                )
            ) as views:  # fmt: skip
                for view in views:
                    yield (*chips, *view)
        finally:
            remove_uploads(document_paths(message), self.upload_root)

    def read_documents(self, message: Any, history: Sequence[Mapping[str, Any]]) -> tuple[list[Document], int]:
        """The documents this turn answers from, oldest first: those attached earlier in the
        conversation (their chips' data) and then the message's own, read here within the
        limits (`hfchat.documents.extract` refuses a file with the reason). Returns them and
        how many are the message's own (the last ones)."""
        limits = self.limits.documents
        earlier = conversation_documents(history, limits)
        paths = document_paths(message)
        for path in paths:
            check_uploaded(path, self.upload_root)
        if len(earlier) + len(paths) > MAX_DOCUMENTS:
            raise InputError(
                f"A conversation can hold {MAX_DOCUMENTS} documents; this message would make it"
                f" {len(earlier) + len(paths)}.",
                "Start a new conversation for these files, or attach fewer.",
            )
        new = [extract(path, Path(path).name, limits) for path in paths]
        total = sum(d.chars for d in [*earlier, *new])
        if total > limits.max_chars:
            raise InputError(
                f"The documents of this conversation would hold {total:,} characters of text;"
                f" the limit is {limits.max_chars:,}.",
                "Start a new conversation for this file, or attach a shorter one.",
            )
        return [*earlier, *new], len(new)

    def fit_context(
        self,
        messages: Sequence[BaseMessage],
        documents: Sequence[Document],
        question: str,
        settings: ChatSettings,
        window: ContextWindow,
        counter: TokenCounter,
        ranker: Ranker | None = None,
    ) -> tuple[Fitted, Plan]:
        """The turn's messages within the model's context, with the documents' part of it:
        all of them when they fit in the room left after the messages and the reply
        (max_new_tokens), else the passages `ranker` (None: BM25) ranks best for the question
        (`hfchat.retrieval.plan`). The documents of the current turn come before the oldest
        history: they may take half the room that the system prompt, the question and the
        reply leave, and older turns are then left out (`hfchat.context.fit_to_window`)."""
        reserved = settings.generation.max_new_tokens
        planned = plan_documents(messages, documents, question, reserved, window, counter, ranker)
        sent = with_documents(messages, planned.context)
        return fit_to_window(sent, window, settings.generation.max_new_tokens, counter), planned

    def _turn(
        self,
        message: Any,
        history: Sequence[Mapping[str, Any]],
        values: Mapping[str, Any],
        session_token: str | None,
        session: str | None,
        oauth_token: str | None,
        cancel: threading.Event | None,
        show_speed: bool,
        endpoint_key: str | None,
        client: str | None,
        tools: ToolChoice | None,
        chips: list[Attached],
        continue_from: Continuation | None = None,
    ) -> Generator[ReplyView, None, None]:
        """The reply so far, for the chat window: a loading notice, then the streamed reply
        (see `Reply.view`), or a `Failed` after any partial reply, which is kept. A reply
        past a limit (`Bounded`) is cut: what arrived is kept, then `Failed(cut=True)`.

        `session` (Gradio's session hash) is what the per-session rate limit counts; on a
        public deployment `client` (the visitor's address) is counted too.
        Setting `cancel` from another thread stops the generation even while this generator
        is blocked waiting for the backend (compare mode's Stop); closing it does too.
        `endpoint_key` is the visitor's own key for their custom endpoint (this session only).
        `tools` are the tools the model may call (`run_tools`: up to --max-tool-steps rounds).
        `continue_from`: this turn continues the reply to `message` that stopped for length
        (`hfchat.continuation`): the model goes on from its answer so far, offered no tools,
        and the view is the joined answer under one footer (`continued_reply`)."""
        hf_token = resolve_token(session_token, oauth_token)
        token = self.credential(values, hf_token, endpoint_key)
        reply: Reply | None = None
        notice = ""
        settings: ChatSettings | None = None
        cancel = cancel or threading.Event()
        started = time.monotonic()
        held: str | None = None
        try:
            if not content_text(message).strip() and not file_paths(message):
                raise ConfigError(
                    "message: the message is empty.", "Type a message, then press Enter.", field="message"
                )
            self.limiter.admit(session, client if self.policy.public else None)
            held = self.active.acquire(client if self.policy.public else None)
            self.limits.check_text("message", content_text(message))
            self.limits.check_text("system_prompt", str(values.get("system_prompt") or ""))
            settings = self.settings_for(values, token)
            check_attachments(message, settings.spec.task)
            documents, added = self.read_documents(message, history)
            chips += [Attached(d.name, describe(d), to_data(d)) for d in documents[len(documents) - added :]]
            history, dropped = fit_history(history, self.limits.max_history_chars)
            choice = tools if tools is not None and continue_from is None else ToolChoice()
            offered = self.offer_tools(choice, settings, session, hf_token)
            notice = "\n\n".join(filter(None, [trim_notice(dropped, self.limits.max_history_chars), *offered.notices]))
            with_tools = bool(offered.tools)
            if settings.spec.backend is Backend.LOCAL and settings.spec not in self.cache:
                opened = yield from self.loading_turn(settings, message, history, token, notice, cancel, with_tools)
                if opened is None:
                    return  # stopped while it loaded: the model still lands in the cache
                turn = opened
            else:
                deadline = self.turn_deadline(settings, started)
                turn = self.open_turn(settings, message, history, token, deadline, with_tools)
            if with_tools and not _backend(settings).supports_tools(turn.chat):
                notice = "\n\n".join(filter(None, [notice, _no_tools_notice(settings)]))
                offered = Offered()
            window, counter = self.context_of(settings, turn.chat, hf_token, token, download=False)
            asked = settings.generation.max_new_tokens
            reserved = reply_room(turn.messages, window, asked, counter)
            if reserved < asked:
                generation = settings.generation.model_copy(update={"max_new_tokens": reserved})
                settings = settings.model_copy(update={"generation": generation})
                notice = "\n\n".join(filter(None, [notice, lowered_notice(reserved, asked, window)]))
            question = content_text(message)
            ranker = self.embeddings.for_token(hf_token, cancel) if self.embeddings is not None else None
            fitted, planned = self.fit_context(turn.messages, documents, question, settings, window, counter, ranker)
            messages = fitted.messages
            trimmed = token_trim_notice(fitted.dropped, window)
            notice = "\n\n".join(filter(None, [notice, trimmed, planned.notice]))
            source = ReplySource.of(settings, getattr(turn.chat, "model_id", None), turn.cached, turn.load_s)
            reply = continued_reply(source, notice, continue_from, tuple(planned.source_labels()))
            secrets = (token, hf_token, session_token, oauth_token, endpoint_key, self.endpoint_api_key)
            messages = continued_messages(messages, continue_from)  # after the documents: they go with the question
            for step in range(self.max_tool_steps + 1):
                # the last round offers no tools: the model must answer with what it has
                step_tools = offered.tools if step < self.max_tool_steps else {}
                # each model call gets its own event: a finished local generation sets its event
                # (to free the device), which must not read as Stop for the rest of the turn
                step_cancel = StepCancel(cancel)
                deltas = self.bounded(
                    dataclasses.replace(turn, messages=messages), settings, step_cancel, started, step_tools
                )
                for delta in deltas:
                    reply.add(delta)
                    if delta.text or delta.reasoning:
                        yield reply.view(show_speed)
                    elif delta.waiting_s is not None:  # queued behind another generation on the device
                        yield (*reply.view(show_speed), Waiting(delta.waiting_s))
                text, requests = reply.end_step()
                if deltas.cut or not requests or not step_tools:
                    break
                results = yield from self.run_tools(reply, requests, step_tools, cancel, secrets, show_speed)
                if cancel.is_set():
                    return  # Stop: the window keeps what it shows, under "stopped by you"
                messages += tool_round(text, requests, results)
                reply.next_step()
            if deltas.cut:
                reply.cut(deltas.cut)
            else:
                reply.finish()
                _check_not_empty(reply)
            log.info("turn done: %s", reply.footer())
            yield reply.view(show_speed)
        except Exception as exc:  # noqa: BLE001 - the one boundary of a turn, see below
            # Whatever a turn raises ends here as a message in the chat, after the partial reply,
            # and the history is untouched. An exception that escaped would reach Gradio, whose
            # generic "Error" badge loses the partial reply and wedges the browser tab (issue 10).
            # Errors of servers and libraries (RECOVERABLE) are translated; anything else is a bug
            # of ours, shown as an internal error whose reference finds its traceback in the log.
            # Every secret of this turn is masked, even those not sent (a server may know another).
            secrets = (token, hf_token, session_token, oauth_token, endpoint_key, self.endpoint_api_key)
            yield _failure(exc, settings, secrets, reply, notice, show_speed)
        finally:
            cancel.set()
            self.active.release(held)

    def context_of(
        self, settings: ChatSettings, chat: Any, hf_token: str | None, credential: str | None, download: bool = True
    ) -> tuple[ContextWindow, TokenCounter]:
        """The turn's context window and token counter (`hfchat.context.ContextLookup`).
        `chat` is the built model if there is one (else None: nothing is built or loaded; a
        local model's tokenizer and config are read alone), `hf_token` what Hub requests
        carry, `credential` what an endpoint's requests carry (`credential`); without `download`
        a remote model's tokenizer is only used if it was fetched before. A model this
        deployment may not build is not looked up at all: unknown window, estimated counts."""
        if chat is None:
            try:
                self.policy.check(settings.spec, credential)
            except HFChatError:
                return ContextWindow(), EstimateCounter()
        window = self.context.window(settings, chat, hf_token, credential)
        return window, self.context.counter(settings, chat, hf_token, credential, download)

    def settings_for(self, values: Mapping[str, Any], token: str | None) -> ChatSettings:
        """The turn's validated settings, with this deployment's timeout, retries and local
        folders, keyed by the token's fingerprint (never the token)."""
        return build_settings(
            **values,
            token_fingerprint=self.fingerprint(token),
            timeout=self.timeout,
            retry=self.retry,
            local_dirs=self.limits.local_dirs,
        )

    def measure(
        self,
        message: Any,
        history: Sequence[Mapping[str, Any]],
        values: Mapping[str, Any],
        session_token: str | None,
        oauth_token: str | None = None,
        endpoint_key: str | None = None,
    ) -> ContextUse | None:
        """How much of the context the next turn would use, for the meter under the chat box:
        the system prompt, the history and the message's text (`build_messages`, before any
        trimming), plus max_new_tokens reserved for the reply. Cheap: a model is never loaded
        for it (a cached one's tokenizer is used; else `context_of`'s lookups, cached), and
        attached files are not read. None when the settings do not validate (the turn itself
        names the bad field)."""
        hf_token = resolve_token(session_token, oauth_token)
        token = self.credential(values, hf_token, endpoint_key)
        try:
            settings = self.settings_for(values, token)
        except HFChatError:
            return None
        text = {"text": content_text(message), "files": []}
        system = settings.system_prompt
        messages = build_messages(text, history, system, "text-generation")  # images are not counted
        window, counter = self.context_of(settings, self.cache.peek(settings.spec), hf_token, token)
        reserved = settings.generation.max_new_tokens
        documents = conversation_documents(history, self.limits.documents)  # what the box holds is not read yet
        try:
            planned = plan_documents(messages, documents, content_text(message), reserved, window, counter)
        except InputError:
            planned = Plan("none")  # the turn says why no part fits
        messages = with_documents(messages, planned.context)
        minimal = build_messages(text, [], system, "text-generation")
        use = ContextUse(counter.messages(messages), reserved, window, counter.exact)
        if use.fits:
            return use
        return dataclasses.replace(use, minimal_fits=ContextUse(counter.messages(minimal), reserved, window, True).fits)


class StepCancel(threading.Event):
    """The cancel event of one model call within a turn: set by itself (the call's own end, a
    limit) or by the turn's event (Stop), which it reads but never sets."""

    def __init__(self, turn: threading.Event) -> None:
        super().__init__()
        self.turn = turn

    def is_set(self) -> bool:
        return super().is_set() or self.turn.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                return False
            super().wait(left)
        return True


@dataclass(frozen=True)
class Turn:
    """What one turn runs on: the built chat model, the messages, and how the model was got."""

    chat: Any
    messages: list[BaseMessage]
    cached: bool
    load_s: float


def plan_documents(
    messages: Sequence[BaseMessage],
    documents: Sequence[Document],
    question: str,
    reserved: int,
    window: ContextWindow,
    counter: TokenCounter,
    ranker: Ranker | None = None,
) -> Plan:
    """What of `documents` goes with `question` (`hfchat.retrieval.plan`, its chunks ranked by
    `ranker`, None: BM25), in the room the context leaves after `messages` and `reserved`
    (max_new_tokens) but at least half the room that the system prompt and the question alone
    leave (see `ChatService.fit_context`). The meter passes no ranker: it never calls a server."""
    if not documents:
        return Plan("none")
    known = window.tokens or UNKNOWN_WINDOW_TOKENS  # plan for a small model when nothing says
    head = [m for m in messages[:1] if isinstance(m, SystemMessage)]
    alone = known - counter.messages([*head, *messages[-1:]]) - reserved
    room = max(known - counter.messages(messages) - reserved, alone // 2)
    return plan(documents, question, room - DOCUMENT_MARGIN_TOKENS, counter.text, ranker=ranker)


UNKNOWN_WINDOW_TOKENS = 4096
"""The context length documents are planned for when the model's is not known (the meter says
so): small enough for most chat models, so a document too long for it is retrieved from."""

DOCUMENT_MARGIN_TOKENS = 32
"""Left free beside the documents: the blank lines that join them to the question."""

BUILD_BUDGET_BYTES = 4 * 2**20
"""What a remote client's build may read from the network (GET /v1/models and the like)."""

BYTES_PER_TOKEN = CHARS_PER_TOKEN * 4 + 1024
"""What the wire may carry per token of a streamed reply: up to CHARS_PER_TOKEN characters
of UTF-8, plus a generous allowance for each chunk's JSON and SSE framing."""

REPLY_BASE_BYTES = 256 * 2**10
"""Bytes allowed on top of BYTES_PER_TOKEN x max_new_tokens: headers, an error body, usage."""

_TIMEOUTS = (DeadlineExceeded, TimeoutError, httpx.TimeoutException)
"""What a read past its deadline raises: hfchat.net's own error, or httpx's wrapping of it."""


@dataclass(frozen=True)
class Deadlines:
    """One turn's time limits, on the time.monotonic() clock."""

    turn_end: float
    turn_timeout: float
    stall_timeout: float
    first_by: float | None = None
    """When the first chunk must have come (a remote server: --timeout after the request)."""
    first_timeout: float = 0

    def next_due(self, started: bool, now: float) -> tuple[float, str]:
        """When the next chunk must arrive, and the notice if it does not."""
        turn = (self.turn_end, f"cut: the turn took longer than {self.turn_timeout:g} s (--turn-timeout).")
        if started:
            stall = f"cut: the server sent nothing for {self.stall_timeout:g} s (--stall-timeout)."
            return min(turn, (now + self.stall_timeout, stall))
        if self.first_by is None:
            return turn
        first = f"cut: the server sent nothing for {self.first_timeout:g} s (--timeout)."
        return min(turn, (self.first_by, first))


class Bounded:
    """A backend's deltas within one turn's limits; iterate it once, then read `cut`.

    - Tokens: more chunks (answer and reasoning alike) than `max_new_tokens`, or a server
      usage above it, ends the reply; so do more than CHARS_PER_TOKEN x max_new_tokens
      characters (a chunk is clipped first, so an oversized one is never kept whole).
    - Bytes: the wire may carry REPLY_BASE_BYTES + BYTES_PER_TOKEN x max_new_tokens in all
      (`hfchat.deadline.io_budget`), so a single huge line is stopped while it is read.
    - Time (`Deadlines`): the stream must end by the turn's deadline, its first chunk come
      within --timeout (remote servers), and each next one within --stall-timeout. Each
      read runs under that deadline (`hfchat.deadline.io_deadline`: hfchat.net makes socket
      reads honour it, and the local streamer's wait does too); a chunk that still arrives
      late ends the reply after it. Before the first chunk a deadline is a timeout error
      (nothing to keep, so the reply reads "Timed out"), after it a cut.

    At a limit, `cut` says why ("cut: ..."), `cancel` is set so a generate thread stops,
    and the stream is closed, which ends the HTTP request.
    """

    def __init__(
        self,
        deltas: Iterator[Delta],
        max_new_tokens: int,
        deadlines: Deadlines,
        cancel: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deltas = deltas
        self.max_new_tokens = max_new_tokens
        self.deadlines = deadlines
        self.cancel = cancel
        self.clock = clock
        self.cut = ""

    def __iter__(self) -> Iterator[Delta]:
        chunks, chars_left, started = 0, CHARS_PER_TOKEN * self.max_new_tokens, False
        bytes_left = REPLY_BASE_BYTES + BYTES_PER_TOKEN * self.max_new_tokens
        with closing_stream(self.deltas):
            while True:
                due, late_notice = self.deadlines.next_due(started, self.clock())
                try:
                    with io_deadline(due), io_budget(bytes_left) as budget:
                        delta = next(self.deltas)
                except StopIteration:
                    return
                except ReplyTooLargeError:  # the wire carried more than any reply this long
                    return self._stop(self._too_long())
                except _TIMEOUTS:
                    if not started or self.clock() < due - 0.05:
                        # Nothing arrived yet: the server did not answer in time, an error like
                        # any timeout. Or a read timeout of its own (--timeout) came first.
                        raise
                    return self._stop(late_notice)
                bytes_left -= budget.used if budget is not None else 0
                late = self.clock() > due  # arrived after the deadline (a reader that ignores it)
                if delta.text or delta.reasoning:
                    started = True
                    chunks += 1
                    if chunks > self.max_new_tokens:
                        return self._stop(self._too_long())
                    delta, clipped = _clip(delta, chars_left)
                    chars_left -= len(delta.text) + len(delta.reasoning)
                    if clipped:
                        yield delta
                        return self._stop(self._too_long())
                yield delta
                if delta.usage is not None and (delta.usage.output_tokens or 0) > self.max_new_tokens:
                    return self._stop(self._too_long())
                if late:
                    return self._stop(late_notice)

    def _too_long(self) -> str:
        return f"cut: the server sent more than max_new_tokens ({self.max_new_tokens})."

    def _stop(self, reason: str) -> None:
        self.cut = reason
        self.cancel.set()  # a local generate thread stops at its next token
        log.warning("turn %s", reason)


def _clip(delta: Delta, chars_left: int) -> tuple[Delta, bool]:
    """`delta` with at most `chars_left` characters of reasoning and text, and whether it was cut."""
    if len(delta.text) + len(delta.reasoning) <= chars_left:
        return delta, False
    reasoning = delta.reasoning[: max(chars_left, 0)]
    text = delta.text[: max(chars_left - len(reasoning), 0)]
    return Delta(text=text, reasoning=reasoning, finish_reason=delta.finish_reason, usage=delta.usage), True


def _failure(
    exc: Exception,
    settings: ChatSettings | None,
    secrets: Sequence[str | None],
    reply: Reply | None,
    notice: str,
    show: bool,
) -> ReplyView:
    """The reply for a turn that raised `exc`: what arrived so far, then a `Failed`.

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
    failed = error.failed()
    shown = dataclasses.replace(failed, message=redact(failed.message, *secrets), hint=redact(failed.hint, *secrets))
    if reply is None:
        return (*_notices(notice), shown)
    reply.fail(shown)
    return reply.view(show)


def tool_round(text: str, requests: Sequence[ToolCallRequest], results: Mapping[str, CallResult]) -> list[BaseMessage]:
    """One round of tool calls as the model gets it back: its own message with the calls (and
    any text it wrote before them), then each call's result as a tool message (an error too:
    the model reads why, and may try again)."""
    calls = [{"name": r.name, "args": r.arguments or {}, "id": r.id, "type": "tool_call"} for r in requests]
    out: list[BaseMessage] = [AIMessage(content=text, tool_calls=calls)]
    for request in requests:
        result = results.get(request.id)
        content = result.result if result is not None else "the tool did not run"
        out.append(ToolMessage(content=content, tool_call_id=request.id, name=request.name))
    return out


def continued_reply(
    source: ReplySource, notice: str, continuation: Continuation | None, sources: tuple[str, ...] = ()
) -> Reply:
    """A turn's reply: a new one, or the answer so far of the reply it continues, whose
    footer then counts both parts (`Reply.resumed`)."""
    if continuation is None:
        return Reply(source, notice=notice, sources=sources)
    return Reply.resumed(source, continuation.text, continuation.figures, notice, sources)


def _no_tools_notice(settings: ChatSettings) -> str:
    return (
        f"*Tools are not offered: {settings.spec.where} cannot call them (its chat template has no "
        "tools support, or the backend runs none for this task). Switch tools off in Settings → Tools, "
        "or choose a model that calls tools.*"
    )


def _notices(notice: str) -> tuple[Notice, ...]:
    return (Notice(notice),) if notice else ()


def _backend(settings: ChatSettings) -> ChatBackend:
    return backend_for(settings.spec.backend, settings.spec.task)


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


def loading_notice(spec: ModelSpec) -> Loading:
    """Shown while a local model loads; says when it loads in 4-bit, so the UI shows the mode."""
    return Loading(spec.model, spec.quantization.label if spec.quantization else "")


def loading_progress(loading: Loading, elapsed_s: float, progress: LoadProgress | None) -> Loading:
    """`loading` after `elapsed_s` seconds, with the stage and share its load reports
    (`hfchat.loading.progress_of`: None before the load began)."""
    if progress is None:
        return dataclasses.replace(loading, elapsed_s=elapsed_s)
    return dataclasses.replace(loading, elapsed_s=elapsed_s, stage=progress.stage, progress=progress.fraction)


_RESPOND_ARGS = {"hf_token": "session_token", "endpoint_api_key": "endpoint_key", "show_speed": "show_speed"}
"""The `/chat` parameters that are `ChatService.respond`'s own arguments, not turn settings."""

_TOOL_ARGS = ("tools", "mcp_tools", "mcp_url")
"""The `/chat` parameters that make the turn's `ToolChoice`."""


def chat_signature(defaults: Any) -> inspect.Signature:
    """The `/chat` function's signature: `message`, `history`, every setting of the schema
    by its API name (in `API_ORDER`, defaulting to the flags' values), then the request and
    the signed-in visitor's token, which Gradio fills in."""
    initial = defaults.sidebar.model_dump(mode="json")
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD

    def param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
        return inspect.Parameter(name, keyword, default=default, annotation=annotation)

    settings = [
        param(name, SETTINGS[name].field.annotation, initial.get(name, SETTINGS[name].default)) for name in API_ORDER
    ]
    head = [param("message", Any), param("history", list[dict[str, Any]])]
    tail = [param("request", Any, None), param("oauth_token", Any, None)]
    return inspect.Signature([*head, *settings, *tail], return_annotation=Iterator[ReplyView])


@dataclass(frozen=True)
class ChatCall:
    """One call of the `/chat` function, sorted: the turn's message and history, its settings
    (`values`), `ChatService.respond`'s own arguments, and who is asking."""

    message: Any
    history: Any
    values: dict[str, Any]
    own: dict[str, Any]
    choice: ToolChoice
    session: str | None
    client: str | None
    signed_in: str | None


def bind_call(signature: inspect.Signature, defaults: Any, *args: Any, **kwargs: Any) -> ChatCall:
    """Sort a call by `chat_signature`'s names (the defaults fill what a caller leaves out)."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    given = dict(bound.arguments)
    message, history = given.pop("message"), given.pop("history")
    request, oauth_token = given.pop("request"), given.pop("oauth_token")
    own = {arg: given.pop(name) for name, arg in _RESPOND_ARGS.items()}
    choice = ToolChoice.of(*(given.pop(name) for name in _TOOL_ARGS))
    return ChatCall(
        message,
        history,
        given,
        own,
        choice,
        session=getattr(request, "session_hash", None),
        client=client_address(request, getattr(defaults, "on_space", False)),
        # Gradio injects the signed-in visitor's gr.OAuthToken (or None) here; the UI sets the hint.
        signed_in=getattr(oauth_token, "token", None),
    )


def _documented(fn: Callable[..., Any], signature: inspect.Signature, returns: Any) -> None:
    """Give `fn` the API's signature; Gradio reads the type hints (for gr.Request and
    gr.OAuthToken) from __annotations__."""
    fn.__signature__ = signature.replace(return_annotation=returns)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}


def make_chat_fn(service: ChatService, defaults: Any) -> Callable[..., Iterator[ReplyView]]:
    """The function behind the chat box and the `/chat` API.

    Its parameter names are the API's names (`chat_signature`, derived from the settings
    schema), so `Client.predict(message=..., temperature=...)` works; `defaults` (the CLI's
    AppOptions) fills what a direct caller leaves out.
    """
    signature = chat_signature(defaults)

    def chat(
        *args: Any, cancel: threading.Event | None = None, continue_from: Continuation | None = None, **kwargs: Any
    ) -> Iterator[ReplyView]:
        # `cancel` is not an API parameter: the UI's pacing (`hfchat.streaming.paced`) passes
        # its event, so Stop reaches a backend call that is blocked waiting (see `respond`).
        # Nor is `continue_from`: Continue (the button, `/continue`) passes the cut reply's start.
        call = bind_call(signature, defaults, *args, **kwargs)
        yield from service.respond(
            call.message,
            call.history,
            call.values,
            call.own["session_token"],
            call.session,
            call.signed_in,
            show_speed=call.own["show_speed"],
            endpoint_key=call.own["endpoint_key"],
            client=call.client,
            cancel=cancel,
            tools=call.choice,
            continue_from=continue_from,
        )

    _documented(chat, signature, Iterator[ReplyView])
    return chat


def make_measure_fn(service: ChatService, defaults: Any) -> Callable[..., ContextUse | None]:
    """The context meter's function: called as the chat function is (`chat_signature`: the
    box's message, the history, every setting by name, the request and the signed-in
    visitor's token), it returns `ChatService.measure`'s `ContextUse` (None: settings that
    do not validate)."""
    signature = chat_signature(defaults)

    def measure(*args: Any, **kwargs: Any) -> ContextUse | None:
        call = bind_call(signature, defaults, *args, **kwargs)
        session_token, endpoint_key = call.own["session_token"], call.own["endpoint_key"]
        return service.measure(
            call.message, call.history or [], call.values, session_token, call.signed_in, endpoint_key
        )

    _documented(measure, signature, ContextUse | None)
    return measure
