"""What Inference Providers and custom endpoints share: `RemoteBackend`, the OpenAI
chat-completion call; `providers.py` and `endpoint.py` override its `_prepare_*` hooks.

`RemoteBackend.call_kwargs` is where the stack's silent drops are fixed: ChatHuggingFace
forwards call keywords straight to `InferenceClient.chat_completion`, so every setting is
sent here.
`RemoteChat` keeps what ChatHuggingFace's chunk conversion drops: the reasoning that
DeepSeek-R1 hosts stream in `reasoning_content`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from huggingface_hub import (
    ChatCompletionStreamOutput,
    ChatCompletionStreamOutputChoice,
    ChatCompletionStreamOutputDelta,
    ChatCompletionStreamOutputDeltaToolCall,
    ChatCompletionStreamOutputFunction,
    ChatCompletionStreamOutputUsage,
)
from huggingface_hub.errors import HfHubHTTPError
from langchain_core.messages import AIMessageChunk, BaseMessage, BaseMessageChunk, SystemMessage
from langchain_core.outputs import ChatGenerationChunk

from hfchat.backends.chat_model import FoldingChat
from hfchat.backends.types import Delta, Usage, closing_stream
from hfchat.config import ChatSettings, ModelSpec
from hfchat.continuation import PREFILL_BODY, as_instruction, continues_reply
from hfchat.errors import MalformedChunk, ToolsRefusedError, retry_after_of, server_detail, status_of
from hfchat.tools.parsing import ToolCallSplitter
from hfchat.tools.types import ToolCallChunk, ToolSpec

if TYPE_CHECKING:
    from langchain_huggingface import HuggingFaceEndpoint

    from hfchat.fairqueue import DeviceQueues

log = logging.getLogger(__name__)

# A server whose chat template refuses the system role answers with one of these
# (TGI 422, vLLM 400, transformers serve a bare 500).
_TEMPLATE_FAILURE_STATUSES = (400, 422, 500)

RETRY_STATUSES = (429, 503)
"""Rate limited, or the model is still loading: waiting can fix these, nothing else."""


STREAM_OPTIONS = {"include_usage": True}
"""Asks for token usage at the end of a stream (OpenAI's field; TGI, vLLM and the providers
honour it, `transformers serve` ignores it and sends usage anyway)."""


class RemoteChat(FoldingChat):
    """ChatHuggingFace for OpenAI-compatible servers, whose stream keeps the reasoning.

    ChatHuggingFace's chunk conversion keeps only `content` and tool calls; this reads the
    same raw chunks and also keeps `reasoning_content` (or vLLM's `reasoning`), the
    finish reason and the usage.

    `prefills`: the server may be asked to continue a final assistant message
    (`continuation.PREFILL_BODY`); cleared on the cached instance once it refuses them.
    """

    prefills: bool = True

    def _stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        message_dicts, params = self._create_message_dicts(messages, stop)
        raws = self.llm.client.chat_completion(messages=message_dicts, **{**params, **kwargs, "stream": True})
        for raw in _server_chunks(raws):
            chunk = _generation_chunk(raw)
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


# Where huggingface_hub reads a streamed line (JSON, then its dataclasses): an error raised
# there is about the server's bytes, whatever its type.
_PARSERS = frozenset({"_format_chat_completion_stream_output", "parse_obj_as_instance"})


def _server_chunks(raws: Iterator[Any]) -> Iterator[Any]:
    """`raws` as they come, with huggingface_hub's failures to parse a line turned into
    MalformedChunk: a line that is not JSON, or JSON that is not an object, is the server's
    fault, while the same exception types raised anywhere else stay bugs."""
    iterator = iter(raws)
    while True:
        try:
            raw = next(iterator)
        except StopIteration:
            return
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            if not _raised_parsing(exc):
                raise
            what = "JSON" if isinstance(exc, json.JSONDecodeError) else "a JSON object"
            raise MalformedChunk(f"a streamed line is not {what}") from exc
        yield raw


def _raised_parsing(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in _PARSERS:
            return True
        tb = tb.tb_next
    return False


def _typed(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """`value` when it is None or of `kind`, else MalformedChunk naming the field `what`."""
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise MalformedChunk(f"{what} is {type(value).__name__}, not {_kind_name(kind)}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", int: "a whole number", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, "an object") for k in kinds)


def _count(usage: ChatCompletionStreamOutputUsage, name: str) -> int:
    value = getattr(usage, name, None)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 12.0 from a lenient JSON encoder still counts
    value = _typed(value, int, f"usage.{name}")
    if value is not None and value < 0:
        raise MalformedChunk(f"usage.{name} is negative")
    return value or 0


def _generation_chunk(raw: Any) -> ChatGenerationChunk:
    """One raw `ChatCompletionStreamOutput` as a LangChain chunk, reasoning kept.

    huggingface_hub keeps whatever JSON the server sent, so every field is checked here: a
    chunk of the wrong shape (`"delta": "str"`, `"usage": "lots"`) raises MalformedChunk,
    which says the server sent a reply hfchat cannot read, never an AttributeError of ours.
    """
    _typed(raw, ChatCompletionStreamOutput, "the chunk")
    choices = _typed(raw.choices, list, "choices") or []
    choice = _typed(choices[0], ChatCompletionStreamOutputChoice, "choices[0]") if choices else None
    delta = _typed(choice.delta, ChatCompletionStreamOutputDelta, "choices[0].delta") if choice is not None else None
    content = reasoning = ""
    tool_chunks: list[Any] = []
    if delta is not None:
        tool_chunks = [
            _tool_call_chunk(raw_call, i)
            for i, raw_call in enumerate(_typed(delta.tool_calls, list, "delta.tool_calls") or [])
        ]
        content = _typed(delta.content, str, "delta.content") or ""
        reasoning = (
            _typed(getattr(delta, "reasoning_content", None), str, "delta.reasoning_content")
            or _typed(getattr(delta, "reasoning", None), str, "delta.reasoning")
            or ""
        )
    usage = _typed(raw.usage, ChatCompletionStreamOutputUsage, "usage")
    finish = _typed(choice.finish_reason, str, "finish_reason") if choice is not None else None
    message: BaseMessageChunk = AIMessageChunk(
        content=content,
        tool_call_chunks=tool_chunks,
        additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
        usage_metadata=(
            {
                "input_tokens": _count(usage, "prompt_tokens"),
                "output_tokens": _count(usage, "completion_tokens"),
                "total_tokens": _count(usage, "total_tokens"),
            }
            if usage
            else None
        ),
    )
    return ChatGenerationChunk(message=message, generation_info={"finish_reason": finish} if finish else None)


def _tool_call_chunk(raw: Any, position: int) -> dict[str, Any]:
    """One streamed piece of a tool call (`delta.tool_calls[i]`) as LangChain's chunk dict:
    servers send the id and name in a call's first piece and its JSON arguments in pieces,
    each piece naming the call by `index` (a server that leaves it out: the piece's place)."""
    _typed(raw, ChatCompletionStreamOutputDeltaToolCall, "delta.tool_calls[]")
    function = _typed(raw.function, ChatCompletionStreamOutputFunction, "tool_calls[].function")
    index = _typed(getattr(raw, "index", None), int, "tool_calls[].index")
    return {
        "type": "tool_call_chunk",
        "index": position if index is None else index,
        "id": _typed(getattr(raw, "id", None), str, "tool_calls[].id"),
        "name": _typed(getattr(function, "name", None), str, "tool_calls[].function.name") if function else None,
        "args": _typed(getattr(function, "arguments", None), str, "tool_calls[].function.arguments")
        if function
        else None,
    }


def to_delta(chunk: AIMessageChunk) -> Delta:
    """A streamed LangChain chunk as our Delta (empty when it carries nothing)."""
    usage = chunk.usage_metadata
    reasoning = chunk.additional_kwargs.get("reasoning_content")
    return Delta(
        text=chunk.content if isinstance(chunk.content, str) else "",
        reasoning=reasoning if isinstance(reasoning, str) else "",
        finish_reason=chunk.response_metadata.get("finish_reason"),
        usage=Usage(usage["input_tokens"], usage["output_tokens"], "server") if usage else None,
        tool_calls=tuple(
            ToolCallChunk(int(c.get("index") or 0), c.get("id") or "", c.get("name") or "", c.get("args") or "")
            for c in chunk.tool_call_chunks
        ),
    )


class RemoteBackend:
    """What Inference Providers and custom endpoints share: build a RemoteChat, send the
    OpenAI chat-completion fields, stream with retries and the system-role fallback.

    A variant overrides only the `_prepare_*` hooks, as huggingface_hub's provider helpers
    do: `_prepare_llm` (the HuggingFaceEndpoint to talk to, required), `_prepare_chat` (after
    the chat model is made) and `_prepare_call` (fields only this variant sends).
    """

    def build(self, spec: ModelSpec, token: str | None) -> RemoteChat:
        chat = RemoteChat(llm=self._prepare_llm(spec, token))
        self._prepare_chat(chat, spec, token)
        return chat

    def _prepare_llm(self, spec: ModelSpec, token: str | None) -> HuggingFaceEndpoint:
        raise NotImplementedError

    def _prepare_chat(self, chat: RemoteChat, spec: ModelSpec, token: str | None) -> None:
        """Adjust the built chat model; nothing by default."""

    def _prepare_call(self, kwargs: dict[str, Any], settings: ChatSettings) -> dict[str, Any]:
        """Fields only this variant sends; none by default."""
        return kwargs

    def supports_tools(self, chat: Any) -> bool:
        """Servers say so only by refusing a request that offers tools (`ToolsRefusedError`)."""
        return True

    def call_kwargs(self, settings: ChatSettings) -> dict[str, Any]:
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
        return self._prepare_call(kwargs, settings)

    def stream(
        self,
        chat: FoldingChat,
        messages: Sequence[BaseMessage],
        settings: ChatSettings,
        cancel: threading.Event,
        queues: DeviceQueues | None = None,
        tools: Sequence[ToolSpec] = (),
    ) -> Iterator[Delta]:
        """The reply's deltas; leaving the loop closes the HTTP stream, which stops the server.
        Remote requests never wait in the device `queues`: they run in parallel.

        429 and 503 before the first token are retried with backoff (see `_first`).
        If the server fails before the first token and the turn has a system prompt, it is
        tried once more with the system prompt folded into the first user turn; if that works,
        the cached client keeps folding. Otherwise the original error is raised.

        A turn that ends in an assistant message continues it (`_continued`).
        """
        if continues_reply(messages):
            yield from self._continued(chat, messages, settings, cancel)
            return
        yield from self._stream(chat, messages, settings, cancel, tools)

    def _continued(
        self, chat: FoldingChat, messages: Sequence[BaseMessage], settings: ChatSettings, cancel: threading.Event
    ) -> Iterator[Delta]:
        """Continue the final assistant message: as a prefix the server continues
        (`PREFILL_BODY`, vLLM's fields), or, for a server that refuses those fields before
        the first token (`transformers serve` answers 422 "Unexpected fields"), with
        `as_instruction`; the cached client then asks that way from the start."""
        if getattr(chat, "prefills", False):
            stream = self._stream(chat, messages, settings, cancel, extra_body=PREFILL_BODY)
            try:
                first = next(stream, None)
            except HfHubHTTPError as exc:
                if status_of(exc) not in _TEMPLATE_FAILURE_STATUSES:
                    raise
                log.info("the server refused to continue a prefilled reply (HTTP %s); asking it to", status_of(exc))
                chat.prefills = False  # type: ignore[attr-defined]
            else:
                with closing_stream(stream):
                    if first is not None:
                        yield first
                    yield from stream
                return
        yield from self._stream(chat, as_instruction(messages), settings, cancel)

    def _stream(
        self,
        chat: FoldingChat,
        messages: Sequence[BaseMessage],
        settings: ChatSettings,
        cancel: threading.Event,
        tools: Sequence[ToolSpec] = (),
        extra_body: Mapping[str, Any] | None = None,
    ) -> Iterator[Delta]:
        try:
            first, deltas = self._first(chat, messages, settings, cancel, tools, extra_body)
        except HfHubHTTPError as exc:
            if tools and status_of(exc) in _TEMPLATE_FAILURE_STATUSES:
                raise _tools_refused(exc) from exc
            if not _may_refuse_system(exc, chat, messages):
                raise
            retry = chat.model_copy(update={"fold_system": True})
            try:
                first, deltas = self._first(retry, messages, settings, cancel, tools, extra_body)
            except HfHubHTTPError:
                raise exc from None
            log.info("the server refused the system role; folding it into the first user turn from now on")
            chat.fold_system = True
        if first is None:
            return
        stream = self._rest(first, deltas, cancel)
        yield from (text_tool_calls(stream) if tools else stream)

    def _rest(self, first: Delta, deltas: Iterator[Delta], cancel: threading.Event) -> Iterator[Delta]:
        yield first
        with closing_stream(deltas):
            for delta in deltas:
                if cancel.is_set():
                    return
                yield delta

    def _deltas(
        self,
        chat: FoldingChat,
        messages: Sequence[BaseMessage],
        settings: ChatSettings,
        tools: Sequence[ToolSpec],
        extra_body: Mapping[str, Any] | None = None,
    ) -> Iterator[Delta]:
        offered: dict[str, Any] = {"tools": [t.openai() for t in tools], "tool_choice": "auto"} if tools else {}
        if extra_body:
            offered["extra_body"] = dict(extra_body)
        stream = chat.stream(list(messages), stream_options=STREAM_OPTIONS, **self.call_kwargs(settings), **offered)
        with closing_stream(stream) as chunks:
            for chunk in chunks:
                delta = to_delta(chunk)
                if delta:
                    yield delta

    def _first(
        self,
        chat: FoldingChat,
        messages: Sequence[BaseMessage],
        settings: ChatSettings,
        cancel: threading.Event,
        tools: Sequence[ToolSpec] = (),
        extra_body: Mapping[str, Any] | None = None,
    ) -> tuple[Delta | None, Iterator[Delta]]:
        """Open the stream and read its first delta, retrying 429 and 503 as `settings.retry` says.

        This is the only place that retries: once a delta has been read the stream is handed
        on and never retried, so a reply is never duplicated or restarted.
        """
        attempt = 0
        while True:
            deltas = self._deltas(chat, messages, settings, tools, extra_body)
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


TEXT_CALL_INDEX = 1000
"""Where calls found in the text are numbered from, apart from the server's own `tool_calls`."""


def text_tool_calls(deltas: Iterator[Delta]) -> Iterator[Delta]:
    """`deltas`, with tool calls written into the text taken out as calls. Servers that render
    the tools into the prompt but do not parse the reply (`transformers serve` on most models,
    llama.cpp without --jinja) stream a call as text: `<tool_call>{json}</tool_call>` (Hermes,
    Qwen) or `[TOOL_CALLS]...` (Mistral), which `hfchat.tools.parsing` reads as the local
    backend does. The formats with distinctive markers only: a reply that merely starts with
    `{` stays text (a server's own `tool_calls` come apart, untouched)."""
    splitter = ToolCallSplitter(("hermes", "mistral"))
    with closing_stream(deltas):
        for delta in deltas:
            if delta.text:
                delta = dataclasses.replace(delta, text=splitter.feed(delta.text))
            if delta:
                yield delta
    text, calls = splitter.finish()
    shifted = tuple(dataclasses.replace(c, index=c.index + TEXT_CALL_INDEX) for c in calls)
    if text or shifted:
        yield Delta(text=text, tool_calls=shifted)


def _tools_refused(exc: HfHubHTTPError) -> ToolsRefusedError:
    """Some servers fail any request that offers tools (vLLM without --enable-auto-tool-choice,
    a template with no tools support): say so, with the server's own words and the ways on."""
    detail = server_detail(exc)
    return ToolsRefusedError(
        f"The server failed the request that offered tools (HTTP {status_of(exc)}): {detail}",
        "Switch the tools off in Settings → Tools and press Retry, or start the server with tool calling "
        "on (vLLM: --enable-auto-tool-choice --tool-call-parser NAME; llama.cpp: --jinja).",
    )


def _may_refuse_system(exc: HfHubHTTPError, chat: FoldingChat, messages: Sequence[BaseMessage]) -> bool:
    status = exc.response.status_code if exc.response is not None else None
    has_system = any(isinstance(m, SystemMessage) for m in messages)
    return has_system and not chat.fold_system and status in _TEMPLATE_FAILURE_STATUSES
