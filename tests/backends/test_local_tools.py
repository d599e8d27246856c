"""Tool calls on the local backend, with the tiny `tools` model (a Hermes/Qwen2.5-style template
that renders tools; scripted to call the calculator after a question and to answer after the
result): real HuggingFacePipeline, real generate, real chat templates."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from hfchat.backends import local
from hfchat.backends.local import LOCAL
from hfchat.backends.types import Delta
from hfchat.config import Backend, ChatSettings, GenerationSettings, ModelSpec
from hfchat.errors import ChatTemplateError
from hfchat.fairqueue import DeviceQueues, FairQueue
from hfchat.testing.tiny_models import TOOL_TOKENS, TOOLS_TEMPLATE, build_tokenizer
from hfchat.tools.parsing import kept_special_tokens, split_reply
from hfchat.tools.types import ToolCallChunk, ToolSpec, joined_calls

CALCULATOR = ToolSpec(
    "calculator",
    "Evaluates an arithmetic expression exactly.",
    {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)
QUESTION: list[BaseMessage] = [SystemMessage("Be brief."), HumanMessage("What is 6*7?")]
CALLED = AIMessage(
    content="", tool_calls=[{"name": "calculator", "args": {"expression": "6*7"}, "id": "call_0", "type": "tool_call"}]
)
RESULT = ToolMessage(content="42", tool_call_id="call_0", name="calculator")
AFTER_TOOL = [*QUESTION, CALLED, RESULT]
# A template whose source names [TOOL_CALLS] (here in a comment), as Mistral's does: tool_format -> "mistral".
MISTRAL_STYLE = "{% for m in messages %}[INST] {{ m['content'] }}[/INST]{% endfor %}{# [TOOL_CALLS] #}"


def spec_for(path: Path) -> ModelSpec:
    return ModelSpec(backend=Backend.LOCAL, model=str(path), device="cpu")


def stream(chat: Any, path: Path, messages: list[BaseMessage], tools: tuple[ToolSpec, ...] = ()) -> list[Delta]:
    settings = ChatSettings(spec=spec_for(path), generation=GenerationSettings(do_sample=False, max_new_tokens=40))
    return list(LOCAL.stream(chat, messages, settings, threading.Event(), DeviceQueues(), tools=tools))


def prompt_tokens(chat: Any, prompt: str) -> int:
    return len(chat.tokenizer(prompt, add_special_tokens=False).input_ids)


@pytest.fixture(scope="module")
def tools_model(tiny_models: dict[str, Path]) -> tuple[Any, Path]:
    return LOCAL.build(spec_for(tiny_models["tools"]), None), tiny_models["tools"]


@pytest.fixture(scope="module")
def chatml_model(tiny_models: dict[str, Path]) -> tuple[Any, Path]:
    return LOCAL.build(spec_for(tiny_models["chat"]), None), tiny_models["chat"]


def test_the_prompt_the_model_reads_holds_the_tools(tools_model: tuple[Any, Path]) -> None:
    """apply_chat_template got the tools: the rendered prompt names and describes the tool, and
    generate read that prompt (its token count is the one the stream reports)."""
    chat, path = tools_model
    assert local.supports_tools(chat) and LOCAL.supports_tools(chat)
    prompt = local.render_prompt(chat, QUESTION, [CALCULATOR])
    assert '"name": "calculator"' in prompt and "Evaluates an arithmetic expression exactly." in prompt
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    plain = chat._to_chat_prompt(QUESTION)
    assert "calculator" not in plain
    summary = stream(chat, path, QUESTION, (CALCULATOR,))[-1]
    assert summary.usage is not None and summary.usage.input_tokens == prompt_tokens(chat, prompt)
    assert summary.usage.input_tokens > prompt_tokens(chat, plain)


def test_the_stream_yields_the_parsed_call_and_no_markup(tools_model: tuple[Any, Path]) -> None:
    chat, path = tools_model
    deltas = stream(chat, path, QUESTION, (CALCULATOR,))
    assert "".join(d.text for d in deltas) == ""  # the reply is the call alone; its markup is never text
    with_calls = [d for d in deltas if d.tool_calls]
    assert len(with_calls) == 1 and deltas.index(with_calls[0]) == len(deltas) - 2  # just before the summary
    assert with_calls[0].tool_calls == (ToolCallChunk(0, "call_0", "calculator", '{"expression": "6*7"}'),)
    request = joined_calls(list(with_calls[0].tool_calls))[0]
    assert (request.name, request.arguments, request.error) == ("calculator", {"expression": "6*7"}, "")
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None


@pytest.mark.parametrize("offered", [(CALCULATOR,), ()], ids=["tools offered", "last step, no tools"])
def test_after_the_tool_result_the_model_answers(tools_model: tuple[Any, Path], offered: tuple[ToolSpec, ...]) -> None:
    """The loop's next step: the history holds the AIMessage with the call and the ToolMessage
    with its result, rendered by the template as its own tool turns."""
    chat, path = tools_model
    prompt = local.render_prompt(chat, AFTER_TOOL, offered)
    assert '<tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>' in prompt
    assert "<tool_response>\n42\n</tool_response>" in prompt
    assert ("# Tools" in prompt) == bool(offered)
    deltas = stream(chat, path, AFTER_TOOL, offered)
    assert "".join(d.text for d in deltas) == "It is 42."
    assert not any(d.tool_calls for d in deltas)
    assert deltas[-1].usage is not None and deltas[-1].usage.input_tokens == prompt_tokens(chat, prompt)


def test_without_tools_a_plain_chat_is_rendered_as_before(tools_model: tuple[Any, Path]) -> None:
    """No tools and no tool turns: LangChain's own rendering, as before tools existed, and
    the text is not parsed (the scripted model's call shows as written)."""
    chat, path = tools_model
    assert local.render_prompt(chat, QUESTION) == chat._to_chat_prompt(QUESTION)
    text = "".join(d.text for d in stream(chat, path, QUESTION))
    assert text == '<tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'


def test_a_template_without_tools_is_not_sent_them(chatml_model: tuple[Any, Path]) -> None:
    chat, path = chatml_model
    assert not local.supports_tools(chat) and not LOCAL.supports_tools(chat)
    with pytest.raises(ChatTemplateError, match="does not show tools"):
        stream(chat, path, QUESTION, (CALCULATOR,))


def test_tool_turns_without_a_tool_template_are_written_as_text(chatml_model: tuple[Any, Path]) -> None:
    """A ChatML template without tool support would drop the call (it prints only `content`):
    the call and its results are written as text, the results in one user turn."""
    chat, path = chatml_model
    assert not chat.native_tool_turns
    second = ToolMessage(content="7", tool_call_id="call_1", name="calculator")
    prompt = local.render_prompt(chat, [*AFTER_TOOL, second])
    assert '[called the tool calculator with {"expression": "6*7"}]' in prompt
    assert (
        "<|im_start|>user\n[result of the tool calculator]\n42\n\n[result of the tool calculator]\n7<|im_end|>\n"
        "<|im_start|>assistant\n"
    ) in prompt
    assert "<|im_start|>tool" not in prompt
    deltas = stream(chat, path, AFTER_TOOL)
    assert "".join(d.text for d in deltas) and deltas[-1].usage is not None
    assert deltas[-1].usage.input_tokens == prompt_tokens(chat, local.render_prompt(chat, AFTER_TOOL))


def test_tool_markers_that_are_special_tokens_survive_decoding() -> None:
    """Mistral's [TOOL_CALLS] and [ARGS] are special tokens: the usual decoding (special tokens
    skipped) would leave `calculator{...}`, which no parser can read. With tools offered they
    are kept, and only they: the end-of-sequence token still leaves the text."""
    tok = build_tokenizer(MISTRAL_STYLE)
    tok.add_tokens(["[TOOL_CALLS]", "[ARGS]"], special_tokens=True)
    keep = kept_special_tokens(tok)
    assert keep == frozenset({"[TOOL_CALLS]", "[ARGS]"})
    reply = tok.encode('[TOOL_CALLS]calculator[ARGS]{"expression": "6*7"}<|im_end|>', add_special_tokens=False)

    def generate(streamer: Any, criteria: Any) -> None:  # what generate hands its streamer
        streamer.put(torch.tensor([tok.encode("hi", add_special_tokens=False)]))
        for token in reply:
            streamer.put(torch.tensor([token]))
        streamer.end()

    def text(keep_special: frozenset[str] | None) -> str:
        deltas = local.stream_generation(generate, tok, threading.Event(), FairQueue(), None, keep_special=keep_special)
        return "".join(d.text for d in deltas)

    assert text(None) == 'calculator{"expression": "6*7"}'  # as before: the markers are lost
    kept = text(keep)
    assert kept == '[TOOL_CALLS]calculator[ARGS]{"expression": "6*7"}'
    assert split_reply(kept, ["mistral"])[1] == (ToolCallChunk(0, "call_0", "calculator", '{"expression": "6*7"}'),)
    assert kept_special_tokens(build_tokenizer(TOOLS_TEMPLATE, TOOL_TOKENS)) is None  # <tool_call> is not special
