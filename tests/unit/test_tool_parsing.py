"""A local model's tool calls read from its text (hfchat.tools.parsing): each format, whole and
streamed in pieces split anywhere, and which chat templates render tools at all.

The templates of Qwen2.5, Llama 3.1 and Mistral v0.3 are written here (the Hub is offline):
cut down to what decides the tool format, each faithful to its model's tokenizer_config.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from hfchat.testing.tiny_models import CHATML_TEMPLATE, TOOLS_TEMPLATE, build_tokenizer
from hfchat.tools.parsing import (
    TemplateSplitter,
    ToolCallSplitter,
    split_reply,
    splitter_for,
    supports_tools,
    tool_format,
)
from hfchat.tools.types import ToolCallChunk, ToolSpec, joined_calls

CALC = '{"name": "calculator", "arguments": {"expression": "6*7"}}'
SEARCH = '{"name": "web_search", "arguments": {"query": "Paris weather"}}'
HERMES_TWO = f"<tool_call>\n{CALC}\n</tool_call>\n<tool_call>\n{SEARCH}\n</tool_call>"
SPEC = ToolSpec(
    "calculator", "Evaluates an arithmetic expression.", {"type": "object", "properties": {"expression": {}}}
)

# Qwen/Qwen2.5-7B-Instruct, tokenizer_config.json "chat_template": the tools block of the system
# turn, assistant tool calls as <tool_call> JSON, tool results grouped in a user turn.
QWEN25_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}"
    '{{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n'
    'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}'
    '{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}'
    '{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments '
    'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, '
    '\\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}'
    "{%- else %}{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- endif %}{%- endif %}"
    "{%- for message in messages %}"
    '{%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
    '(message.role == "assistant" and not message.tool_calls) %}'
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == \"assistant\" %}{{- '<|im_start|>' + message.role }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    '{{- \'\\n<tool_call>\\n{"name": "\' }}{{- tool_call.name }}{{- \'", "arguments": \' }}'
    "{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}"
    '{%- elif message.role == "tool" %}'
    '{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}'
    "{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# meta-llama/Llama-3.1-8B-Instruct, tokenizer_config.json: JSON tool calling with the tools in
# the first user turn, calls written as {"name", "parameters"}, results under the ipython role,
# <|python_tag|> for the built-in tools.
LLAMA31_TEMPLATE = (
    "{{- bos_token }}{%- set tools_in_user_message = true %}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}'
    '{%- if tools is not none %}{{- "Environment: ipython\\n" }}{%- endif %}'
    '{{- system_message }}{{- "<|eot_id|>" }}'
    "{%- if tools_in_user_message and not tools is none %}"
    "{%- set first_user_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}"
    "{{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}"
    '{{- "Given the following functions, please respond with a JSON for a function call with its proper '
    'arguments that best answers the given prompt.\\n\\nRespond in the format {\\"name\\": function name, '
    '\\"parameters\\": dictionary of argument name and its value}.Do not use variables.\\n\\n" }}'
    '{%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\\n\\n" }}{%- endfor %}'
    '{{- first_user_message + "<|eot_id|>"}}{%- endif %}'
    "{%- for message in messages %}"
    "{%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' }}"
    "{%- elif 'tool_calls' in message %}{%- set tool_call = message.tool_calls[0].function %}"
    "{%- if builtin_tools is defined and tool_call.name in builtin_tools %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    '{{- "<|python_tag|>" + tool_call.name + ".call(" }}{{- ")" }}'
    "{%- else %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    "{{- '{\"name\": \"' + tool_call.name + '\", ' }}{{- '\"parameters\": ' }}"
    '{{- tool_call.arguments | tojson }}{{- "}" }}{%- endif %}{{- "<|eot_id|>" }}'
    '{%- elif message.role == "tool" or message.role == "ipython" %}'
    '{{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}'
    "{%- if message.content is mapping or message.content is iterable %}"
    '{{- message.content | tojson }}{%- else %}{{- message.content }}{%- endif %}{{- "<|eot_id|>" }}'
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

# mistralai/Mistral-7B-Instruct-v0.3, tokenizer_config.json: [AVAILABLE_TOOLS] before the last
# user turn, calls as [TOOL_CALLS] and a JSON list, results as [TOOL_RESULTS].
MISTRAL_TEMPLATE = (
    "{%- set user_messages = messages | selectattr('role', 'equalto', 'user') | list %}"
    "{{- bos_token }}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if tools is not none and (message == user_messages[-1]) %}{{- '[AVAILABLE_TOOLS] [' }}"
    "{%- for tool in tools %}{%- set tool = tool.function %}"
    '{{- \'{"type": "function", "function": {\' }}{{- \'"name": \' + (tool.name | tojson) + \', \' }}'
    "{{- '\"description\": ' + (tool.description | tojson) }}{{- '}}' }}"
    "{%- if not loop.last %}{{- ', ' }}{%- else %}{{- ']' }}{%- endif %}{%- endfor %}"
    "{{- '[/AVAILABLE_TOOLS]' }}{%- endif %}"
    "{{- '[INST] ' + message['content'] + '[/INST]' }}"
    "{%- elif message.tool_calls is defined and message.tool_calls is not none %}{{- '[TOOL_CALLS] [' }}"
    "{%- for tool_call in message.tool_calls %}"
    '{{- \'{"name": "\' + tool_call.function.name + \'", "arguments": \' + '
    "(tool_call.function.arguments | tojson) + '}' }}"
    "{%- if not loop.last %}{{- ', ' }}{%- else %}{{- ']' + eos_token }}{%- endif %}{%- endfor %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- elif message['role'] == 'tool' %}"
    "{{- '[TOOL_RESULTS] {\"content\": ' + (message.content | tojson) + '}[/TOOL_RESULTS]' }}"
    "{%- endif %}{%- endfor %}"
)

# transformers 5.24's response template for Qwen2/Qwen3 (transformers/cli/serving/utils.py,
# _RESPONSE_TEMPLATE_FALLBACKS): what a tokenizer that declares `response_template` carries.
QWEN_RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "reasoning_content": {"open": "<think>", "close": "</think>", "content": "text"},
        "tool_calls": {
            "open_pattern": r"\s*<tool_call>",
            "close": "</tool_call>",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"\s*(?:<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>)", "content": "text"},
    },
}


def streamed(splitter: Any, pieces: list[str]) -> tuple[str, tuple[ToolCallChunk, ...], list[str]]:
    """Feed `pieces` one by one: (all visible text, the calls, what each feed showed)."""
    shown = [splitter.feed(piece) for piece in pieces]
    rest, calls = splitter.finish()
    return "".join(shown) + rest, calls, shown


def names_and_args(calls: tuple[ToolCallChunk, ...]) -> list[tuple[str, Any]]:
    return [(c.name, json.loads(c.arguments)) for c in calls]


# -- Hermes / Qwen


def test_hermes_one_call_whole_with_text_before_kept() -> None:
    text, calls = split_reply(f"Let me compute that. <tool_call>\n{CALC}\n</tool_call>", ["hermes"])
    assert text == "Let me compute that. "
    assert calls == (ToolCallChunk(0, "call_0", "calculator", '{"expression": "6*7"}'),)


def test_hermes_several_calls_get_indices_and_ids_in_order() -> None:
    text, calls = split_reply(HERMES_TWO, ["hermes"])
    assert text == ""  # the newlines between and after blocks are not an answer
    assert [(c.index, c.id) for c in calls] == [(0, "call_0"), (1, "call_1")]
    assert names_and_args(calls) == [("calculator", {"expression": "6*7"}), ("web_search", {"query": "Paris weather"})]
    assert [r.arguments for r in joined_calls(list(calls))] == [{"expression": "6*7"}, {"query": "Paris weather"}]


@pytest.mark.parametrize("reply", [f"Sure. {HERMES_TWO}", f"<tool_call>{CALC}</tool_call> then more text"])
def test_hermes_split_at_every_position_shows_no_markup(reply: str) -> None:
    whole_text, whole_calls = split_reply(reply, ["hermes"])
    for cut in range(1, len(reply)):
        text, calls, shown = streamed(ToolCallSplitter(["hermes"]), [reply[:cut], reply[cut:]])
        assert (text, calls) == (whole_text, whole_calls), cut
        assert not any("<tool" in s or "{" in s for s in shown), (cut, shown)
    text, calls, shown = streamed(ToolCallSplitter(["hermes"]), list(reply))  # one character at a time
    assert (text, calls) == (whole_text, whole_calls)
    assert not any("<" in s for s in shown)


def test_partial_marker_is_held_back_then_released_when_it_is_not_one() -> None:
    splitter = ToolCallSplitter(["hermes"])
    assert splitter.feed("A <tool") == "A "  # might be <tool_call>: held
    assert splitter.feed("box> B") == "<toolbox> B"  # it was not
    assert splitter.finish() == ("", ())


def test_ordinary_text_mentioning_tool_call_is_not_a_call() -> None:
    for reply in (
        "The tool_call field holds the name.",
        "Models write <tool_call> tags around their calls.",
        "Write <tool_call> then </tool_call> around JSON.",
    ):
        for formats in (["hermes"], ["hermes", "llama3", "mistral"]):
            assert split_reply(reply, formats) == (reply, ()), (reply, formats)


def test_malformed_json_becomes_a_call_whose_arguments_are_the_raw_text() -> None:
    bad = '{"name": "calculator", "arguments": {"expression": "6*7"}'  # one brace short
    text, calls = split_reply(f"<tool_call>{bad}</tool_call><tool_call>{SEARCH}</tool_call>", ["hermes"])
    assert text == ""
    assert calls[0] == ToolCallChunk(0, "call_0", "calculator", bad)
    requests = joined_calls(list(calls))
    assert requests[0].arguments is None and "not valid JSON" in requests[0].error
    assert requests[1].name == "web_search" and requests[1].error == ""


def test_a_block_cut_off_before_its_end_is_still_a_call() -> None:
    text, calls = split_reply(f"<tool_call>\n{CALC}", ["hermes"])
    assert (text, names_and_args(calls)) == ("", [("calculator", {"expression": "6*7"})])


# -- Llama 3.1 JSON


@pytest.mark.parametrize(
    "reply",
    [
        '{"name": "calculator", "parameters": {"expression": "6*7"}}',
        '<|python_tag|>{"name": "calculator", "parameters": {"expression": "6*7"}}',
        ' \n{"name": "calculator", "parameters": {"expression": "6*7"}}',
    ],
)
def test_llama3_json_call_whole_and_split_anywhere(reply: str) -> None:
    assert split_reply(reply, ["llama3"]) == ("", (ToolCallChunk(0, "call_0", "calculator", '{"expression": "6*7"}'),))
    for cut in range(1, len(reply)):
        text, calls, shown = streamed(ToolCallSplitter(["llama3"]), [reply[:cut], reply[cut:]])
        assert text == "" and len(calls) == 1 and not any(shown), cut


def test_llama3_several_calls_joined_by_semicolons() -> None:
    reply = '{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}'
    assert names_and_args(split_reply(reply, ["llama3"])[1]) == [("a", {"x": 1}), ("b", {})]


def test_llama3_text_that_starts_with_a_brace_is_text() -> None:
    for reply in ('{"answer": 42} is the JSON you asked for', "{x} is a set"):
        assert split_reply(reply, ["llama3"]) == (reply, ())
    # in the Hermes format such text is not even held back
    assert ToolCallSplitter(["hermes"]).feed('{"answer": 42}') == '{"answer": 42}'


def test_llama3_malformed_call() -> None:
    reply = '{"name": "calculator", "parameters": {"expression": 6*7}}'
    assert split_reply(reply, ["llama3"])[1] == (ToolCallChunk(0, "call_0", "calculator", reply),)


# -- Mistral


@pytest.mark.parametrize(
    "reply",
    [
        f"[TOOL_CALLS][{CALC}, {SEARCH}]",
        f"[TOOL_CALLS] [{CALC}, {SEARCH}]",
        f"[{CALC}, {SEARCH}]",  # [TOOL_CALLS] is a special token: a decoder that skips them drops it
        '[TOOL_CALLS]calculator[ARGS]{"expression": "6*7"}[TOOL_CALLS]web_search[ARGS]{"query": "Paris weather"}',
        '[TOOL_CALLS]calculator[CALL_ID]a1b2c3d4e[ARGS]{"expression": "6*7"}'
        '[TOOL_CALLS]web_search[ARGS]{"query": "Paris weather"}',
    ],
)
def test_mistral_calls_whole_and_split_anywhere(reply: str) -> None:
    expected = [("calculator", {"expression": "6*7"}), ("web_search", {"query": "Paris weather"})]
    text, calls = split_reply(reply, ["mistral"])
    assert text == "" and names_and_args(calls) == expected
    for cut in range(1, len(reply)):
        text, calls, shown = streamed(ToolCallSplitter(["mistral"]), [reply[:cut], reply[cut:]])
        assert text == "" and names_and_args(calls) == expected and not any(shown), cut


def test_mistral_text_before_the_marker_is_kept_and_lists_of_numbers_are_text() -> None:
    assert split_reply(f"Checking. [TOOL_CALLS][{CALC}]", ["mistral"])[0] == "Checking. "
    assert split_reply("[1, 2, 3] are numbers", ["mistral"]) == ("[1, 2, 3] are numbers", ())


# -- which templates render tools, and in which format


def test_templates_of_the_tool_formats_are_recognised_and_render_tools() -> None:
    for template, expected in (
        (QWEN25_TEMPLATE, "hermes"),
        (TOOLS_TEMPLATE, "hermes"),
        (LLAMA31_TEMPLATE, "llama3"),
        (MISTRAL_TEMPLATE, "mistral"),
    ):
        tok = build_tokenizer(template)
        assert tool_format(tok) == expected
        assert supports_tools(tok), expected
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": "What is 6*7?"}],
            tools=[SPEC.openai()],
            add_generation_prompt=True,
            tokenize=False,
        )
        assert "calculator" in prompt and "Evaluates an arithmetic expression." in prompt


def test_templates_without_tools_are_told_apart(real_model: Path) -> None:
    """ChatML without a tools block (the tiny chat model's), no template at all, and the real
    SmolLM2-135M-Instruct's, which has no tools support: it ignores `tools=`."""
    smollm2 = AutoTokenizer.from_pretrained(real_model)
    assert "tools" not in smollm2.chat_template
    for tok in (build_tokenizer(CHATML_TEMPLATE), build_tokenizer(None), smollm2):
        assert not supports_tools(tok)
        assert tool_format(tok) is None
        assert isinstance(splitter_for(tok), ToolCallSplitter)  # all three formats looked for


# -- transformers' own response parsing


def test_a_declared_response_template_is_parsed_by_transformers() -> None:
    tok = build_tokenizer(QWEN25_TEMPLATE)
    tok.response_template = QWEN_RESPONSE_TEMPLATE
    assert tool_format(tok) == "response_template"
    reply = f"<think>Use the tool.</think>Computing.\n{HERMES_TWO}"
    expected = [("calculator", {"expression": "6*7"}), ("web_search", {"query": "Paris weather"})]
    for cut in range(1, len(reply), 7):
        splitter = splitter_for(tok, [SPEC])
        assert isinstance(splitter, TemplateSplitter)
        text, calls, shown = streamed(splitter, [reply[:cut], reply[cut:]])
        assert text == "<think>Use the tool.</think>Computing.", cut
        assert names_and_args(calls) == expected
        assert [c.id for c in calls] == ["call_0", "call_1"]
        assert not any("tool_call" in s for s in shown)


def test_a_response_template_call_with_malformed_json_is_a_call_with_its_raw_text() -> None:
    splitter = TemplateSplitter(QWEN_RESPONSE_TEMPLATE)
    bad = '{"name": "calculator", "arguments": {"expression": "6*7"}'
    text, calls, _ = streamed(splitter, [f"<tool_call>{bad}", "</tool_call>"])
    assert text == ""
    assert [(c.name, c.arguments) for c in calls] == [("calculator", bad)]
    assert joined_calls(list(calls))[0].error
