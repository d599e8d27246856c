"""Local models through HuggingFacePipeline, with streams that stop for real and fail fast.

LangChain's `HuggingFacePipeline._stream` runs generate in a thread nothing can cancel and
waits 60 s on an empty queue when that thread raises. `StoppablePipeline` replaces it: a
stopping criterion tied to a cancel event ends the generate thread itself, and an error in
the thread reaches the reader at once. This module imports torch and transformers, so it is
only imported when the local backend is used.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import GenerationChunk
from langchain_huggingface import HuggingFacePipeline
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

# The auto classes from their modules, never transformers' lazy attributes: those raised
# AttributeError while another thread imported transformers (the context meter beside a load).
from transformers.models.auto.configuration_auto import AutoConfig
from transformers.trainer_utils import set_seed
from transformers.utils.quantization_config import BitsAndBytesConfig

from hfchat.backends.chat_model import FoldingChat, refuses_system
from hfchat.backends.source import local_source
from hfchat.backends.types import THINK_OPEN, Delta, Usage, closing_stream, ends_inside_think
from hfchat.config import ChatSettings, ModelSpec, Quantization
from hfchat.continuation import continues_reply
from hfchat.cpu import cpu_dtype_name
from hfchat.deadline import DeadlineExceeded, io_timeout
from hfchat.deadline import current as deadline_now
from hfchat.errors import ChatTemplateError, ConfigError, QuantizationUnavailableError, UnsupportedTaskError
from hfchat.fairqueue import DeviceQueues, FairQueue
from hfchat.loading import LoadProgress, tracking
from hfchat.messages import fold_system_prompt
from hfchat.space import on_gpu
from hfchat.tools.parsing import PROBE_TOOL, kept_special_tokens, special_strings, splitter_for
from hfchat.tools.parsing import supports_tools as template_supports_tools
from hfchat.tools.types import ToolSpec

log = logging.getLogger(__name__)

GENERATE_THREAD_NAME = "hfchat-generate"

WAITING_REPEAT_S = 1.0
"""While a generation waits for its device, it says so this often (a live "waiting… N s")."""

PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
"""Used when a model ships no chat template: plain 'Role: text' turns, then 'Assistant:'."""


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class FailFastStreamer(TextIteratorStreamer):
    """A TextIteratorStreamer whose reader gets the generate thread's error immediately.

    It also counts the token ids generate hands it: the prompt's, then each new one, so
    the speed footer's counts are the model's own, not a re-tokenization of the text.
    """

    input_tokens: int | None = None
    output_tokens: int = 0
    last_token: int | None = None
    dropped: tuple[str, ...] = ()
    """Special-token texts taken out of the text, when it is decoded with special tokens
    (a tool-call reply whose markers are special tokens: `stream_generation`'s `keep_special`)."""

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        for special in self.dropped:
            text = text.replace(special, "")
        super().on_finalized_text(text, stream_end)

    def put(self, value: Any) -> None:
        ids = value.reshape(-1)
        if self.next_tokens_are_prompt:
            self.input_tokens = int(ids.numel())
        elif ids.numel():
            self.output_tokens += int(ids.numel())
            self.last_token = int(ids[-1])
        super().put(value)

    def summary(self, max_new_tokens: int | None, eos_ids: Collection[int]) -> Delta:
        """The last delta: token counts, and "length" when the budget ran out before an
        end-of-sequence token (as OpenAI servers report it), else "stop"."""
        cut = self.last_token not in eos_ids and max_new_tokens is not None and self.output_tokens >= max_new_tokens
        usage = Usage(self.input_tokens, self.output_tokens, "tokenizer")
        return Delta(finish_reason="length" if cut else "stop", usage=usage)

    def fail(self, exc: BaseException) -> None:
        self.text_queue.put(_Failure(exc))

    def close(self) -> None:
        self.text_queue.put(self.stop_signal)

    def __next__(self) -> str:
        # The reading thread's deadline (hfchat.deadline: the turn's time limits) bounds the
        # wait too, so a generation that outlives its turn is cut instead of waited for.
        try:
            value = self.text_queue.get(timeout=io_timeout(self.timeout))
        except queue.Empty:
            due = deadline_now()
            if due is not None and due <= time.monotonic():
                raise DeadlineExceeded("the turn's deadline passed while the model was generating") from None
            raise
        if isinstance(value, _Failure):
            raise value.exc
        if value == self.stop_signal:
            raise StopIteration
        return value


class CancelCriteria(StoppingCriteria):
    """Stops generate at the next token once the event is set (the Stop button)."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        stop = self.cancel.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


def eos_ids(model: Any) -> frozenset[int]:
    """The model's end-of-sequence token ids: a reply ending in one was not cut off."""
    eos = model.generation_config.eos_token_id
    return frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])


def stream_generation(
    generate: Callable[[FailFastStreamer, StoppingCriteriaList], Any],
    tokenizer: Any,
    cancel: threading.Event,
    queue: FairQueue,
    seed: int | None,
    *,
    max_new_tokens: int | None = None,
    eos: Collection[int] = frozenset(),
    keep_special: frozenset[str] | None = None,
) -> Iterator[Delta]:
    """Run `generate(streamer, criteria)` in a thread and yield its text as it comes, then
    (unless stopped) a last delta with the finish reason and the token counts.
    Special tokens are skipped, except those in `keep_special` (tool-call markers).

    Setting `cancel` (or leaving the loop) ends generate at its next token; an error in
    the thread reaches the reader at once. `queue` is the device's: generate waits there
    for its turn.
    """
    streamer = FailFastStreamer(tokenizer, skip_prompt=True, skip_special_tokens=keep_special is None)
    if keep_special is not None:
        streamer.dropped = tuple(sorted(special_strings(tokenizer) - keep_special, key=len, reverse=True))
    criteria = StoppingCriteriaList([CancelCriteria(cancel)])
    # Generations on one device take turns, first come first served: a CPU or one GPU
    # runs two no faster. The place in the queue is taken now, in arrival order.
    ticket = queue.enqueue()

    def run() -> None:
        try:
            if not ticket.wait() or cancel.is_set():
                return
            if seed is not None:
                set_seed(seed)
            generate(streamer, criteria)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which re-raises it
            streamer.fail(exc)
        finally:
            ticket.release()
            streamer.close()

    thread = threading.Thread(target=run, name=GENERATE_THREAD_NAME, daemon=True)
    thread.start()
    try:
        if ticket.state == "waiting":  # another generation holds the device: say so, then when it began
            while ticket.state == "waiting" and not cancel.is_set():
                yield Delta(waiting_s=time.monotonic() - ticket.queued_at)
                ticket.wait(io_timeout(WAITING_REPEAT_S))  # past the turn's deadline this raises
            if ticket.state == "waiting" or cancel.is_set():  # stopped before its turn: leave now (finally)
                return
            if ticket.waited_s is not None:
                yield Delta(waited_s=ticket.waited_s)
        for text in streamer:
            if text:
                yield Delta(text=text)
        if not cancel.is_set():  # a stopped generation has nothing to report
            yield streamer.summary(max_new_tokens, eos)
    finally:
        # No join: Stop must not wait. A generation that holds its turn ends at its next
        # token (then frees the device); one still queued leaves the queue now.
        cancel.set()
        ticket.withdraw()


@dataclass
class LocalCall:
    """One local generation's own state, passed through LangChain's stream keywords (as
    `call=`): the Stop event and the chat service's device queues go in, the final summary
    delta (finish reason and token counts) comes out, as data beside the text chunks rather
    than inside one of them."""

    cancel: threading.Event
    queues: DeviceQueues
    summary: Delta | None = None
    queue_news: Delta | None = None
    """A `waiting_s` / `waited_s` delta (its place on the device), handed out before the next chunk."""
    keep_special: frozenset[str] | None = None
    """Special tokens the text keeps (tool-call markers, `parsing.kept_special_tokens`); None: none."""


class StoppablePipeline(HuggingFacePipeline):
    """HuggingFacePipeline whose stream can be cancelled and surfaces errors at once."""

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        """Stream one generation. Extra keywords: `call` (a LocalCall: its `cancel` stops
        generate, its `summary` is set at the end), `pipeline_kwargs` (generate settings) and `seed`."""
        call: LocalCall = kwargs["call"]
        pipeline_kwargs = dict(kwargs.get("pipeline_kwargs") or {})

        def generate(streamer: FailFastStreamer, criteria: StoppingCriteriaList) -> Any:
            return self.pipeline(prompt, streamer=streamer, stopping_criteria=criteria, **pipeline_kwargs)

        deltas = stream_generation(
            generate,
            self.pipeline.tokenizer,
            call.cancel,
            call.queues.for_device(str(self.pipeline.device)),
            kwargs.get("seed"),
            max_new_tokens=pipeline_kwargs.get("max_new_tokens"),
            eos=eos_ids(self.pipeline.model),
            keep_special=call.keep_special,
        )
        with closing_stream(deltas):
            for delta in deltas:
                if delta.usage is not None:  # the last one
                    call.summary = delta
                    # An empty closing chunk: LangChain raises "No generation chunks" for a
                    # stream without any, and a model that says nothing is an empty reply.
                    yield GenerationChunk(text="")
                    continue
                if delta.waiting_s is not None or delta.waited_s is not None:
                    call.queue_news = delta  # beside the text, like the summary
                    yield GenerationChunk(text="")
                    continue
                chunk = GenerationChunk(text=delta.text)
                if run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk


class LocalChat(FoldingChat):
    """The local chat model: ChatHuggingFace over a StoppablePipeline.

    `tools_supported`: its chat template renders the tools it is given (`supports_tools`);
    `native_tool_turns`: it renders an assistant turn's tool calls and a tool turn's result
    itself (else `chat_turns` writes them as plain text). Both are probed once, at load."""

    tools_supported: bool = False
    native_tool_turns: bool = False


PROBE_RESULT = "hfchat_probe_result"


def renders_tool_turns(tokenizer: Any) -> bool:
    """True when the chat template shows both an assistant turn's tool call (its name) and
    the tool turn's result, rendered without `tools=`, as the loop's last step does. A
    generic ChatML template shows the result under a "tool" role but drops the call; a
    Gemma-style one raises on the role: either way the turns are written as text instead."""
    from jinja2 import TemplateError

    call = {"type": "function", "id": "call_0", "function": {"name": PROBE_TOOL.name, "arguments": {"q": "x"}}}
    probe = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": PROBE_RESULT, "name": PROBE_TOOL.name, "tool_call_id": "call_0"},
    ]
    try:
        prompt = tokenizer.apply_chat_template(probe, add_generation_prompt=True, tokenize=False)
    except (TemplateError, TypeError, ValueError):
        return False
    return isinstance(prompt, str) and PROBE_TOOL.name in prompt and PROBE_RESULT in prompt


def has_tool_turns(messages: Sequence[BaseMessage]) -> bool:
    """A history that holds tool calls or results (a tool loop's later steps)."""
    return any(isinstance(m, ToolMessage) or (isinstance(m, AIMessage) and m.tool_calls) for m in messages)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content or [])


def chat_turns(messages: Sequence[BaseMessage], *, native: bool) -> list[dict[str, Any]]:
    """The messages as chat-template turns. `native`: tool calls go in the assistant turn's
    `tool_calls` (arguments as a dict, as Qwen's, Llama's and Mistral's templates read them)
    and results in "tool" turns; otherwise both are written as text (the call in the
    assistant's words, the results in a user turn), so a template without a tool role
    still shows the model what happened."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            turns.append({"role": "system", "content": message.content})
        elif isinstance(message, HumanMessage):
            turns.append({"role": "user", "content": message.content})
        elif isinstance(message, AIMessage):
            turns.append(_assistant_turn(message, native=native))
        elif isinstance(message, ToolMessage):
            turns.append(_tool_turn(message, native=native, after=turns[-1] if turns else None))
            if not native and len(turns) > 1 and turns[-2] is turns[-1]:
                turns.pop()  # merged into the results turn before it
        else:
            raise ValueError(f"Unknown message type: {type(message)}")
    for turn in turns:
        turn.pop("tool_results", None)
    return turns


def _assistant_turn(message: AIMessage, *, native: bool) -> dict[str, Any]:
    text = _text_of(message.content)
    if not message.tool_calls:
        return {"role": "assistant", "content": message.content}
    if native:
        calls = [
            {"type": "function", "id": c.get("id") or "", "function": {"name": c["name"], "arguments": c["args"]}}
            for c in message.tool_calls
        ]
        return {"role": "assistant", "content": text, "tool_calls": calls}
    said = [
        f"[called the tool {c['name']} with {json.dumps(c['args'], ensure_ascii=False)}]" for c in message.tool_calls
    ]
    return {"role": "assistant", "content": "\n".join(filter(None, [text, *said]))}


def _tool_turn(message: ToolMessage, *, native: bool, after: dict[str, Any] | None) -> dict[str, Any]:
    result = _text_of(message.content)
    if native:
        return {"role": "tool", "content": result, "name": message.name or "", "tool_call_id": message.tool_call_id}
    line = f"[result of the tool {message.name or 'call'}]\n{result}"
    if after is not None and after.get("role") == "user" and after.get("tool_results"):
        after["content"] += "\n\n" + line  # several results: one user turn, so roles still alternate
        return after
    return {"role": "user", "content": line, "tool_results": True}


def render_prompt(chat: LocalChat, messages: Sequence[BaseMessage], tools: Sequence[ToolSpec] = ()) -> str:
    """The prompt of a turn that offers tools, whose history holds tool turns, or that
    continues its final assistant message (`continuation.continues_reply`: the prompt ends in
    that message's text, `continue_final_message=True`, so generation carries on from it),
    rendered with `apply_chat_template` (LangChain's own rendering does none of these);
    the system prompt is folded as `FoldingChat` does."""
    if tools and not chat.tools_supported:
        raise ChatTemplateError(
            "This model's chat template does not show tools to the model, so it cannot call them.",
            "Turn the tools off for this model, or choose a model whose chat template supports tools "
            "(for example Qwen2.5-Instruct, Llama 3.1 Instruct or Mistral Instruct v0.3).",
        )
    msgs = fold_system_prompt(messages) if chat.fold_system else list(messages)
    turns = chat_turns(msgs, native=chat.native_tool_turns)
    extra: dict[str, Any] = {"tools": [t.openai() for t in tools]} if tools else {}
    go_on = continues_reply(msgs)
    prompt = chat.tokenizer.apply_chat_template(
        turns, add_generation_prompt=not go_on, continue_final_message=go_on, tokenize=False, **extra
    )
    assert isinstance(prompt, str)
    return prompt


def supports_tools(chat: LocalChat) -> bool:
    """Whether tools can be offered to this local model (its template renders them); when
    not, the panel says so and the loop offers none (a stream offered tools raises
    ChatTemplateError rather than send them unseen)."""
    return chat.tools_supported


def _check_task(task: str) -> None:
    from transformers.pipelines import SUPPORTED_TASKS

    if task not in SUPPORTED_TASKS:
        removed = getattr(transformers.pipelines, "REMOVED_TASKS", {}).get(task, "")
        raise UnsupportedTaskError(
            f"transformers {transformers.__version__} has no '{task}' pipeline. {removed}".strip(),
            "Choose the task text-generation with a decoder-only chat model, or serve this "
            "model with a server that supports it and use the Custom endpoint backend.",
        )


def quantization_config(quantization: Quantization) -> Any:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise QuantizationUnavailableError(
            "4-bit loading needs the bitsandbytes package, which is not installed.",
            "Install it with `pip install bitsandbytes`, or turn 4-bit loading off.",
        )
    try:
        importlib.import_module("bitsandbytes")
    except (ImportError, OSError, RuntimeError) as exc:  # a broken install: missing library, CUDA mismatch
        raise QuantizationUnavailableError(
            f"bitsandbytes is installed but cannot be loaded here: {type(exc).__name__}: {str(exc)[:200]}",
            "Reinstall it (`pip install -U bitsandbytes`; on a CPU it needs bitsandbytes>=0.49, on a GPU a "
            "build matching your CUDA), or turn 4-bit loading off.",
        ) from exc
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quantization.quant_type,
        bnb_4bit_compute_dtype=getattr(torch, quantization.compute_dtype),
        bnb_4bit_use_double_quant=quantization.double_quant,
    )


def placement(spec: ModelSpec) -> dict[str, Any]:
    """from_model_id's device arguments: an int device, or a device_map for 4-bit."""
    cuda = torch.cuda.is_available()
    if spec.device == "cuda" and not cuda:
        raise ConfigError(
            "device: CUDA was asked for but no CUDA GPU is available here.",
            "Choose device 'auto' or 'cpu'.",
            field="device",
        )
    use_cuda = cuda and spec.device in ("cuda", "auto")
    if spec.quantization is not None:
        return {"device_map": "auto" if use_cuda else "cpu"}
    return {"device": 0 if use_cuda else -1}


def _prepare_template(tokenizer: Any) -> bool:
    """Give a template-less tokenizer the plain template; return True if the system role must be folded."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_TEMPLATE
    return refuses_system(tokenizer)


def check_architecture(spec: ModelSpec, token: str | None) -> Any:
    """Refuse an encoder-decoder model for chat before loading its weights; return its config."""
    source = local_source(spec.model)
    config = AutoConfig.from_pretrained(source.path, token=token, trust_remote_code=False, **source.options)
    if spec.task == "text-generation" and getattr(config, "is_encoder_decoder", False):
        raise UnsupportedTaskError(
            f"{spec.model} is an encoder-decoder ({config.model_type}) model, which the text-generation "
            "pipeline cannot run.",
            "Use a decoder-only chat model (for example HuggingFaceTB/SmolLM2-135M-Instruct), or serve "
            "this model elsewhere and use the Custom endpoint backend.",
        )
    return config


LOAD_LOCK = threading.Lock()
"""One local model loads at a time. transformers' from_pretrained swaps class attributes
(`PreTrainedModel.tie_weights`, init functions) for the duration of a load and puts back
what it found: two loads that overlap (compare mode's A and B, two visitors) can leave the
no-op in place for good, and every later model then loads with untied, uninitialized weights."""


def _build(spec: ModelSpec, token: str | None, progress: LoadProgress | None = None) -> LocalChat:
    _check_task(spec.task)
    check_architecture(spec, token)
    # A GGUF file or an unreachable Hub (gguf_file=, local_files_only=): from_model_id hands
    # model_kwargs to both the tokenizer and the model.
    source = local_source(spec.model)
    model_kwargs: dict[str, Any] = {"trust_remote_code": False, **source.options}
    if token:
        model_kwargs["token"] = token
    if progress is not None:
        # from_pretrained hands it to huggingface_hub's downloads (their public tqdm_class)
        model_kwargs["tqdm_class"] = progress.download_bar()
    where = placement(spec)
    if spec.quantization is not None:
        model_kwargs["quantization_config"] = quantization_config(spec.quantization)
    elif where.get("device") == -1:  # on the CPU: bf16 only where it is native (`hfchat.cpu`)
        model_kwargs["dtype"] = getattr(torch, cpu_dtype_name())
    pipeline_kwargs = {"return_full_text": False} if spec.task == "text-generation" else {}
    llm = StoppablePipeline.from_model_id(
        model_id=source.path,
        task=spec.task,
        model_kwargs=model_kwargs,
        pipeline_kwargs=pipeline_kwargs,
        **where,
    )
    # from_model_id keeps model_kwargs on the object; the token must not live there (nor the bar).
    llm.model_kwargs = {k: v for k, v in (llm.model_kwargs or {}).items() if k not in ("token", "tqdm_class")}
    tokenizer = llm.pipeline.tokenizer
    if spec.quantization is not None:
        loaded = bool(getattr(llm.pipeline.model, "is_loaded_in_4bit", False))
        log.info("loaded %s in %s: is_loaded_in_4bit=%s", spec.model, spec.quantization.label, loaded)
    return LocalChat(
        llm=llm,
        tokenizer=tokenizer,
        fold_system=_prepare_template(tokenizer),
        tools_supported=template_supports_tools(tokenizer),
        native_tool_turns=renders_tool_turns(tokenizer),
    )


def call_kwargs(settings: ChatSettings) -> dict[str, Any]:
    """transformers generate settings, passed per call through `pipeline_kwargs`."""
    gen = settings.generation
    pipeline_kwargs: dict[str, Any] = {"max_new_tokens": gen.max_new_tokens, "do_sample": gen.do_sample}
    if gen.do_sample:
        pipeline_kwargs.update(temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k)
    if gen.repetition_penalty != 1.0:
        pipeline_kwargs["repetition_penalty"] = gen.repetition_penalty
    return {"pipeline_kwargs": pipeline_kwargs, "seed": gen.seed}


def _stream(
    chat: LocalChat,
    messages: Sequence[BaseMessage],
    settings: ChatSettings,
    cancel: threading.Event,
    queues: DeviceQueues,
    tools: Sequence[ToolSpec] = (),
) -> Iterator[Delta]:
    """The reply's deltas; setting `cancel` ends the generate thread at the next token.

    When the template opened a think block in the prompt (DeepSeek-R1 style), the first
    text starts with that tag again, so the reply reads as the model meant it.
    With `tools`, a history that holds tool turns, or a final assistant message to continue,
    the prompt is rendered here (`render_prompt`) and, with tools, the text goes through the
    model's tool-call splitter: calls come as one `Delta(tool_calls=...)` before the summary,
    their markup never as text.
    """
    if tools or has_tool_turns(messages) or continues_reply(messages):
        yield from _stream_with_tools(chat, messages, settings, cancel, queues, tools)
        return
    prefix = THINK_OPEN if ends_inside_think(chat._to_chat_prompt(list(messages))) else ""
    call = LocalCall(cancel, queues)
    with closing_stream(chat.stream(list(messages), call=call, **call_kwargs(settings))) as chunks:
        for chunk in chunks:
            if call.queue_news is not None:
                yield call.queue_news
                call.queue_news = None
            if isinstance(chunk.content, str) and chunk.content:
                yield Delta(text=prefix + chunk.content)
                prefix = ""
    if call.summary is not None:
        yield call.summary


def _stream_with_tools(
    chat: LocalChat,
    messages: Sequence[BaseMessage],
    settings: ChatSettings,
    cancel: threading.Event,
    queues: DeviceQueues,
    tools: Sequence[ToolSpec],
) -> Iterator[Delta]:
    prompt = render_prompt(chat, messages, tools)
    prefix = THINK_OPEN if ends_inside_think(prompt) else ""
    splitter = splitter_for(chat.tokenizer, tools) if tools else None
    call = LocalCall(cancel, queues, keep_special=kept_special_tokens(chat.tokenizer) if tools else None)
    with closing_stream(chat.llm.stream(prompt, call=call, **call_kwargs(settings))) as chunks:
        for text in chunks:
            if call.queue_news is not None:
                yield call.queue_news
                call.queue_news = None
            if text:
                shown = splitter.feed(prefix + text) if splitter else prefix + text
                prefix = ""
                if shown:
                    yield Delta(text=shown)
    if splitter is not None:
        rest, calls = splitter.finish()
        if rest:
            yield Delta(text=rest)
        if calls and call.summary is not None:  # a stopped reply's half-written call is not run
            yield Delta(tool_calls=calls)
    if call.summary is not None:
        yield call.summary


def build(spec: ModelSpec, token: str | None) -> LocalChat:
    """The model for `spec`, one load at a time; the load's progress (downloads, weights) is
    reported for the turn that waits for it (`hfchat.loading.progress_of(spec)`)."""
    with tracking(spec, LOAD_LOCK) as progress:
        return _build(spec, token, progress)


def model_of(chat: LocalChat) -> Any:
    """The transformers model inside a built chat, for footprint checks and cleanup."""
    return chat.llm.pipeline.model


Stream = Callable[..., Iterator[Delta]]
"""(chat, messages, settings, cancel, queues, tools=()) -> deltas: `types.ChatBackend.stream`."""


@dataclass(frozen=True)
class LocalBackend:
    """A local backend (`types.ChatBackend`): how it loads a model and how it generates.

    `stream` is wrapped by `space.on_gpu` when the module is imported: on a ZeroGPU Space
    each generation runs under `spaces.GPU`, elsewhere it is the function as written."""

    build: Callable[[ModelSpec, str | None], Any]
    stream: Stream
    model_of: Callable[[Any], Any]
    call_kwargs: Callable[[ChatSettings], dict[str, Any]] = call_kwargs
    supports_tools: Callable[[Any], bool] = lambda chat: False
    """Whether tools may be offered to a built chat (its template renders them); the vision
    backend offers none."""


LOCAL = LocalBackend(build=build, stream=on_gpu(_stream), model_of=model_of, supports_tools=supports_tools)
"""Local text models: ChatHuggingFace over a StoppablePipeline (LocalChat)."""
