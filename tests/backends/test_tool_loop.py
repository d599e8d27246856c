"""The tool loop through `ChatService.respond`, on a real HTTP stream: a loopback OpenAI
server scripted to call tools (split `tool_calls` deltas, as vLLM and TGI stream them), and
tools that are plain objects of the `Tool` protocol. What is under test is the loop: what
the model is offered, what runs, what goes back to the model, and what the window shows."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.reply import answer_text
from hfchat.testing.servers import (
    RecordedRequest,
    Recorder,
    json_response,
    sse_chat_stream,
    sse_response,
    sse_tool_calls_stream,
    tool_model_handler,
)
from hfchat.tools.registry import ToolRegistry
from hfchat.tools.types import ToolError, ToolSpec
from hfchat.ui.render import to_messages
from hfchat.updates import Answer, Failed, ReplyView, ToolCall

SENTINEL = "sentinel-" + "x" * 8 + "-token"


@dataclass
class Adder:
    """A tool that adds two numbers, and remembers what it was called with."""

    calls: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def spec(self) -> ToolSpec:
        schema = {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}
        return ToolSpec("add", "Adds a and b.", schema)

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        self.calls.append(dict(arguments))
        if "a" not in arguments:
            raise ToolError("add needs a and b")
        return str(arguments["a"] + arguments["b"])


@dataclass
class Slow:
    """A tool that waits `seconds`, or until Stop; reports whether it saw the cancel."""

    seconds: float = 30.0
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec("slow", "Waits.", server="test-server")

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        if cancel.wait(self.seconds):
            self.cancelled.set()
        return "slept"


@dataclass
class Leaky:
    """A tool whose result holds the turn's token (as a misbehaving server might echo it)."""

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec("leak", "Echoes.")

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        return f"token is {SENTINEL}"


def registry(*tools: Any) -> ToolRegistry:
    return ToolRegistry(
        builtin=lambda names: {t.spec.name: t for t in tools if t.spec.name in names},
        allowed_builtin=tuple(t.spec.name for t in tools),
    )


def server(calls: Any, answer: Any = None) -> Recorder:
    def default_answer(messages: list[dict[str, Any]]) -> str:
        results = [m["content"] for m in messages if m.get("role") == "tool"]
        return "The results: " + "; ".join(results)

    handler = tool_model_handler(calls, answer or default_answer)
    return Recorder(
        {
            ("GET", "/v1/models"): json_response({"data": [{"id": "tool-model"}]}),
            ("POST", "/v1/chat/completions"): handler,
        }
    )


def chat_fn(rec: Recorder, tools: ToolRegistry, **service: Any) -> Any:
    options = parse_options(["--backend", "endpoint", "--endpoint-url", rec.url, "--max-new-tokens", "64"], {})
    return make_chat_fn(ChatService(cache=ModelCache(2), timeout=5, tools=tools, **service), options)


def posts(rec: Recorder) -> list[RecordedRequest]:
    return [r for r in rec.requests if r.method == "POST"]


@pytest.fixture
def adder() -> Adder:
    return Adder()


def last(views: Iterator[ReplyView]) -> ReplyView:
    out = list(views)
    assert out, "respond yields at least once"
    return out[-1]


def test_two_streamed_calls_run_and_their_results_go_back_to_the_model(adder: Adder) -> None:
    rec = server(lambda body: [("add", '{"a": 2, "b": 40}'), ("add", '{"a": 1.5, "b": 1}')])
    fn = chat_fn(rec, registry(adder))
    view = last(fn("add things", [], tools=["add"]))
    calls = [u for u in view if isinstance(u, ToolCall)]
    assert [(c.name, c.result, c.done, c.error) for c in calls] == [
        ("add", "42", True, False),
        ("add", "2.5", True, False),
    ]
    assert adder.calls == [{"a": 2, "b": 40}, {"a": 1.5, "b": 1}]
    assert answer_text(view) == "The results: 42; 2.5"
    first, second = (r.json for r in posts(rec))
    assert [t["function"]["name"] for t in first["tools"]] == ["add"]
    assert first["tools"][0]["function"]["parameters"]["properties"]["a"] == {"type": "number"}
    assistant = next(m for m in second["messages"] if m.get("tool_calls"))
    assert [json.loads(c["function"]["arguments"]) for c in assistant["tool_calls"]] == adder.calls
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["42", "2.5"]
    assert [m["tool_call_id"] for m in tool_messages] == [c["id"] for c in assistant["tool_calls"]]
    # the window: each call a block above the answer, pending never left behind
    shown = to_messages(view)
    blocks = [m for m in shown if str(m.get("metadata", {}).get("id", "")).startswith("hfchat-tool:")]
    assert [b["metadata"]["status"] for b in blocks] == ["done", "done"]
    assert shown.index(blocks[-1]) < next(i for i, m in enumerate(shown) if not m.get("metadata"))


def test_calls_show_pending_before_they_are_done(adder: Adder) -> None:
    rec = server(lambda body: [("slow", "{}")])
    fn = chat_fn(rec, registry(Slow(seconds=0.3)))
    views = list(fn("wait", [], tools=["slow"]))
    states = [next((u.done for u in v if isinstance(u, ToolCall)), None) for v in views]
    assert False in states and states.index(False) < states.index(True)
    pending = next(v for v in views if any(isinstance(u, ToolCall) and not u.done for u in v))
    assert next(m for m in to_messages(pending) if "tool" in m)["metadata"]["status"] == "pending"


def test_malformed_arguments_and_unknown_tools_go_back_to_the_model_as_errors(adder: Adder) -> None:
    rec = server(lambda body: [("add", '{"a": 1,'), ("rm_rf", "{}")])
    fn = chat_fn(rec, registry(adder))
    view = last(fn("add", [], tools=["add"]))
    bad_json, unknown = [u for u in view if isinstance(u, ToolCall)]
    assert bad_json.error and "not valid JSON" in (bad_json.result or "")
    assert unknown.error and "no tool named 'rm_rf'" in (unknown.result or "") and "add" in (unknown.result or "")
    assert adder.calls == []  # neither ran
    second = posts(rec)[1].json
    assert [m["content"] for m in second["messages"] if m["role"] == "tool"] == [bad_json.result, unknown.result]
    assert isinstance(view[-2], Answer) or any(isinstance(u, Answer) for u in view)


def test_a_tool_error_is_the_tools_result_and_the_turn_goes_on(adder: Adder) -> None:
    rec = server(lambda body: [("add", '{"b": 1}')])
    view = last(chat_fn(rec, registry(adder))("add", [], tools=["add"]))
    call = next(u for u in view if isinstance(u, ToolCall))
    assert call.error and call.result == "add needs a and b"
    assert not any(isinstance(u, Failed) for u in view)
    assert "add needs a and b" in answer_text(view)


def test_a_tool_past_its_timeout_is_an_error_result() -> None:
    rec = server(lambda body: [("slow", "{}")])
    fn = chat_fn(rec, registry(Slow(seconds=30)), tool_timeout=0.5)
    started = time.monotonic()
    view = last(fn("wait", [], tools=["slow"]))
    assert time.monotonic() - started < 10
    call = next(u for u in view if isinstance(u, ToolCall))
    assert call.error and "within 0.5 s (--tool-timeout)" in (call.result or "")


def test_rounds_end_at_max_tool_steps_and_the_last_call_offers_no_tools(adder: Adder) -> None:
    def keeps_calling(req: RecordedRequest) -> Any:  # calls whenever it is offered tools
        if req.json.get("tools"):
            return sse_response(sse_tool_calls_stream([("add", '{"a": 1, "b": 1}')]))
        return sse_response(sse_chat_stream("gave up"))

    rec = server(lambda body: [])
    rec.route("POST", "/v1/chat/completions", keeps_calling)
    view = last(chat_fn(rec, registry(adder), max_tool_steps=3)("add", [], tools=["add"]))
    requests = [r.json for r in posts(rec)]
    assert [bool(r.get("tools")) for r in requests] == [True, True, True, False]
    assert len(adder.calls) == 3
    assert [u.step for u in view if isinstance(u, ToolCall)] == [0, 1, 2]
    assert answer_text(view) == "gave up"


def test_stop_during_a_slow_tool_ends_the_turn_at_once() -> None:
    slow = Slow(seconds=30)
    rec = server(lambda body: [("slow", "{}")])
    fn = chat_fn(rec, registry(slow))
    cancel = threading.Event()
    views = fn("wait", [], tools=["slow"], cancel=cancel)
    for view in views:
        if any(isinstance(u, ToolCall) and not u.done for u in view):
            break
    stopped = time.monotonic()
    cancel.set()
    rest = list(views)
    assert time.monotonic() - stopped < 2
    assert slow.cancelled.wait(2), "the running tool was handed Stop"
    assert all(not any(isinstance(u, Answer) for u in v) for v in rest)
    assert len(posts(rec)) == 1  # nothing more went to the model


@dataclass
class Stubborn:
    """A tool that ignores Stop (a stuck library call): the loop must not wait for it."""

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec("stuck", "Hangs.")

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        time.sleep(20)
        return "late"


def test_stop_does_not_wait_for_a_tool_that_ignores_it() -> None:
    rec = server(lambda body: [("stuck", "{}")])
    cancel = threading.Event()
    views = chat_fn(rec, registry(Stubborn()))("hang", [], tools=["stuck"], cancel=cancel)
    for view in views:
        if any(isinstance(u, ToolCall) for u in view):
            break
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    assert all(not any(isinstance(u, Answer) for u in v) for v in views)
    assert time.monotonic() - started < 2
    assert len(posts(rec)) == 1


def test_a_server_that_refuses_tools_says_so_and_how_to_go_on(adder: Adder) -> None:
    rec = server(lambda body: [])
    rec.fail_next(400, '{"error": "\\"auto\\" tool choice requires --enable-auto-tool-choice"}', path="/v1/chat")
    view = last(chat_fn(rec, registry(adder))("add", [], tools=["add"]))
    failed = next(u for u in view if isinstance(u, Failed))
    assert failed.title == "Tools refused"
    assert "enable-auto-tool-choice" in failed.message and "Settings → Tools" in failed.hint


def test_no_tools_chosen_offers_none(adder: Adder) -> None:
    rec = server(lambda body: [("add", "{}")], answer=lambda m: "plain")
    view = last(chat_fn(rec, registry(adder))("hi", [], tools=[]))
    assert answer_text(view) == "plain"
    assert "tools" not in posts(rec)[0].json


def test_a_tool_not_offered_here_is_refused_with_the_ones_that_are(adder: Adder) -> None:
    rec = server(lambda body: [])
    view = last(chat_fn(rec, registry(adder))("hi", [], tools=["web_search"]))
    failed = next(u for u in view if isinstance(u, Failed))
    assert "does not offer web_search" in failed.message and "add" in failed.hint
    assert posts(rec) == []


@dataclass
class Crashing:
    """A tool with a bug whose exception holds the token."""

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec("crash", "Crashes.")

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        raise RuntimeError(f"boom with {SENTINEL}")


def test_the_token_never_reaches_what_is_shown_or_sent_back_or_logged(caplog: pytest.LogCaptureFixture) -> None:
    rec = server(lambda body: [("leak", "{}"), ("crash", "{}")])
    with caplog.at_level("DEBUG"):
        view = last(chat_fn(rec, registry(Leaky(), Crashing()))("hi", [], tools=["leak", "crash"], hf_token=SENTINEL))
    crashed = next(u for u in view if isinstance(u, ToolCall) and u.name == "crash")
    assert crashed.error and "failed unexpectedly (RuntimeError)" in (crashed.result or "")
    assert "boom with" in caplog.text, "the bug's traceback is in the log"
    assert SENTINEL not in caplog.text
    assert SENTINEL not in json.dumps(to_messages(view))
    assert all(SENTINEL not in r.body.decode() for r in rec.requests)
    assert all(SENTINEL not in json.dumps(dict(r.headers)) for r in rec.requests)


def test_tool_calls_kept_in_the_history_go_back_in_the_next_turn(adder: Adder) -> None:
    rec = server(lambda body: [("add", '{"a": 2, "b": 2}')])
    fn = chat_fn(rec, registry(adder))
    history = [{"role": "user", "content": "add"}, *to_messages(last(fn("add", [], tools=["add"])))]
    rec.clear()
    rec.route("POST", "/v1/chat/completions", tool_model_handler(lambda body: [], lambda m: "ok"))
    list(fn("and now?", history, tools=["add"]))
    sent = posts(rec)[0].json["messages"]
    roles = [m["role"] for m in sent]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"a": 2, "b": 2}
    assert sent[2]["content"] == "4" and sent[3]["content"].startswith("The results: 4")
    # without tools this turn, the calls go as text, which any template takes
    rec.clear()
    list(fn("and without tools?", history, tools=[]))
    plain = posts(rec)[0].json["messages"]
    assert [m["role"] for m in plain] == ["user", "assistant", "user"]
    assert "[called add(" in plain[1]["content"] and "-> 4]" in plain[1]["content"]


def test_on_a_public_deployment_a_visitors_loopback_mcp_url_is_refused_before_any_request() -> None:
    from hfchat.policy import DeploymentPolicy
    from hfchat.tools.registry import deployment_registry

    rec = server(lambda body: [])
    public = DeploymentPolicy.of(True, operator_endpoint=rec.url)  # the operator's own endpoint is allowed
    tools = deployment_registry(["calculator"], True, public)
    view = last(chat_fn(rec, tools, policy=public)("hi", [], tools=[], mcp_url="http://127.0.0.1:9/mcp"))
    failed = next(u for u in view if isinstance(u, Failed))
    assert "does not connect to local or private network addresses" in failed.message, failed
    assert "MCP server" in failed.message
    assert posts(rec) == []


def test_on_a_public_deployment_only_the_operators_built_in_tools_may_be_switched_on() -> None:
    from hfchat.policy import DeploymentPolicy
    from hfchat.tools.registry import deployment_registry

    rec = server(lambda body: [])
    public = DeploymentPolicy.of(True, operator_endpoint=rec.url)
    tools = deployment_registry(["calculator"], True, public)
    view = last(chat_fn(rec, tools, policy=public)("hi", [], tools=["web_search"]))
    failed = next(u for u in view if isinstance(u, Failed))
    assert "does not offer web_search" in failed.message and "calculator" in failed.hint
    private = deployment_registry(["calculator"], False, DeploymentPolicy.of(False))
    assert private.allowed_builtin == ("calculator", "web_search", "current_time")
