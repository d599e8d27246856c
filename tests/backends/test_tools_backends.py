"""`--tools calculator` on the remote backends, with the real built-in calculator: the
endpoint backend against a loopback OpenAI server scripted to call it, Inference Providers
against the same script behind a loopback router (`hub_recorder`); and an MCP server's tools
through the running app's `/chat` (`python app.py --backend endpoint --endpoint-url URL --mcp
MCP_URL`, in process). The local backend's turn is tests/backends/test_local_tools.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hfchat.chat import make_chat_fn
from hfchat.cli import parse_options
from hfchat.reply import answer_text
from hfchat.testing.mcp_server import MCPServerProcess
from hfchat.testing.servers import Recorder, RecordingProxy, TransformersServe, json_response, tool_model_handler
from hfchat.ui.app import build_service
from hfchat.updates import ToolCall
from tests.fixtures import SENTINEL_TOKEN


def asks_calculator(body: dict[str, Any]) -> list[tuple[str, str]]:
    offered = [t["function"]["name"] for t in body.get("tools", [])]
    return [("calculator", json.dumps({"expression": "6*7"}))] if "calculator" in offered else []


def quotes_results(messages: list[dict[str, Any]]) -> str:
    return "It is " + ", ".join(m["content"] for m in messages if m.get("role") == "tool") + "."


def test_the_calculator_on_a_custom_endpoint() -> None:
    with Recorder(
        {
            ("GET", "/v1/models"): json_response({"data": [{"id": "tool-model"}]}),
            ("POST", "/v1/chat/completions"): tool_model_handler(asks_calculator, quotes_results),
        }
    ) as rec:
        options = parse_options(["--backend", "endpoint", "--endpoint-url", rec.url, "--tools", "calculator"], {})
        views = list(make_chat_fn(build_service(options), options)("What is 6 times 7?", []))
    call = next(u for u in views[-1] if isinstance(u, ToolCall))
    assert (call.name, call.server, call.result, call.error) == ("calculator", "built-in", "42", False)
    assert answer_text(views[-1]) == "It is 42."


def test_the_calculator_through_inference_providers(hub_recorder: Recorder) -> None:
    hub_recorder.route("POST", "/v1/chat/completions", tool_model_handler(asks_calculator, quotes_results))
    options = parse_options(
        ["--backend", "providers", "--model", "org/model", "--provider", "auto", "--tools", "calculator"], {}
    )
    views = list(make_chat_fn(build_service(options), options)("What is 6 times 7?", [], hf_token=SENTINEL_TOKEN))
    assert answer_text(views[-1]) == "It is 42."
    posts = [r for r in hub_recorder.requests if r.method == "POST"]
    assert [t["function"]["name"] for t in posts[0].json["tools"]] == ["calculator"]
    assert [m["content"] for m in posts[1].json["messages"] if m["role"] == "tool"] == ["42"]
    # the router is Hugging Face's: it gets the token; the tool's arguments and result never hold it
    assert all(r.headers.get("authorization") == f"Bearer {SENTINEL_TOKEN}" for r in posts)
    assert SENTINEL_TOKEN not in json.dumps(posts[1].json["messages"])


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[MCPServerProcess]:
    with MCPServerProcess() as server:
        yield server


def asks_add(body: dict[str, Any]) -> list[tuple[str, str]]:
    offered = [t["function"]["name"] for t in body.get("tools", [])]
    return [("add", json.dumps({"a": 2, "b": 40}))] if "add" in offered else []


def test_an_mcp_servers_tool_through_the_apps_chat_api(start_app: Any, mcp_server: MCPServerProcess) -> None:
    with Recorder(
        {
            ("GET", "/v1/models"): json_response({"data": [{"id": "tool-model"}]}),
            ("POST", "/v1/chat/completions"): tool_model_handler(asks_add, quotes_results),
        }
    ) as rec:
        argv = ["--backend", "endpoint", "--endpoint-url", rec.url, "--mcp", mcp_server.url]
        app = start_app(parse_options(argv, {}))
        client = app.client()
        messages = client.predict(message="Add 2 and 40", hf_token=SENTINEL_TOKEN, api_name="/chat")
        offered = [t["function"]["name"] for t in rec.requests[-2].json["tools"]]
        sent_back = [m for m in rec.requests[-1].json["messages"] if m["role"] == "tool"]
    assert {"add", "slow", "fail", "whoami"} <= set(offered)
    tool = next(m for m in messages if str((m.get("metadata") or {}).get("id", "")).startswith("hfchat-tool:"))
    assert tool["metadata"]["status"] == "done" and "add" in tool["metadata"]["title"]
    assert "127.0.0.1" in tool["metadata"]["title"]  # the server it ran on
    assert [m["content"] for m in sent_back] == ["42"]
    assert any(m.get("content") == "It is 42." and not m.get("metadata") for m in messages)
    calls = [r for r in mcp_server.requests() if r.get("method") == "POST"]
    assert calls, "the MCP server was called"
    assert SENTINEL_TOKEN not in mcp_server.raw_record(), "a non-HF MCP server never gets the HF token"


def test_the_calculator_on_the_local_backend(tiny_models: dict[str, Any]) -> None:
    """The tiny tools model's template renders the tools (Hermes style); it calls the calculator
    with 6*7 after a question and answers after the tool's result."""
    argv = ["--backend", "local", "--model", str(tiny_models["tools"]), "--device", "cpu", "--do-sample", "false"]
    options = parse_options([*argv, "--tools", "calculator", "--max-new-tokens", "64"], {})
    views = list(make_chat_fn(build_service(options), options)("What is 6 times 7?", []))
    call = next(u for u in views[-1] if isinstance(u, ToolCall))
    assert (call.name, call.result, call.error) == ("calculator", "42", False)
    assert json.loads(call.arguments) == {"expression": "6*7"}
    assert answer_text(views[-1]) == "It is 42."
    assert not any("<tool_call>" in answer_text(v) for v in views), "the call's markup is never shown"


def test_a_local_model_whose_template_has_no_tools_is_told_so_and_still_answers(
    tiny_models: dict[str, Any],
) -> None:
    argv = ["--backend", "local", "--model", str(tiny_models["chat"]), "--device", "cpu", "--do-sample", "false"]
    options = parse_options([*argv, "--tools", "calculator", "--max-new-tokens", "8"], {})
    views = list(make_chat_fn(build_service(options), options)("Hello", []))
    text = answer_text(views[-1])
    assert "Tools are not offered" in text and "chat template has no tools support" in text
    assert not any(isinstance(u, ToolCall) for u in views[-1])
    assert text.split("\n\n", 1)[1].strip(), "the model still answers"


@pytest.fixture(scope="module")
def serve_tools(tiny_models: dict[str, Any]) -> Iterator[TransformersServe]:
    with TransformersServe(tiny_models["tools"]) as server:
        yield server


def test_the_calculator_through_a_real_transformers_serve(serve_tools: TransformersServe) -> None:
    """`transformers serve` renders the tools into the tiny tools model's prompt but streams its
    call as text (`<tool_call>{json}</tool_call>` in `delta.content`): the endpoint backend reads
    the call out of the text, runs it, and the server's template takes the tool message back."""
    with RecordingProxy(serve_tools.url) as proxy:
        argv = ["--backend", "endpoint", "--endpoint-url", proxy.url, "--tools", "calculator"]
        options = parse_options([*argv, "--do-sample", "false", "--max-new-tokens", "64"], {})
        views = list(make_chat_fn(build_service(options), options)("What is 6 times 7?", []))
        posts = [r.json for r in proxy.requests if r.method == "POST"]
    call = next(u for u in views[-1] if isinstance(u, ToolCall))
    assert (call.name, call.result, call.error) == ("calculator", "42", False)
    assert answer_text(views[-1]) == "It is 42."
    assert not any("<tool_call>" in answer_text(v) for v in views), "the call's markup is never shown"
    assert [t["function"]["name"] for t in posts[0]["tools"]] == ["calculator"]
    assert [m["content"] for m in posts[1]["messages"] if m["role"] == "tool"] == ["42"]
