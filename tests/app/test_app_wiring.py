"""The UI's wiring, without a model: the app launched in-process on a `FakeService`.

What the page and `/chat` send reaches the service (the message, the history, every setting
by its API name), and what the service streams comes back in the app's own message shape.
The real service's behaviour is tested elsewhere (test_app.py, test_chat.py); here it is only
the fixed point the wiring is measured against. Each test takes a second or two.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio.blocks import BlockFunction

from hfchat.cli import AppOptions, parse_options
from hfchat.compare import Side, compare_turn
from hfchat.messages import content_text
from hfchat.settings import TURN
from hfchat.testing import answer_text, wait_until
from hfchat.testing.app import RunningApp, running_app
from hfchat.testing.fake_service import FakeCall, FakeService, Scripted
from hfchat.ui.compare_tab import compare_panels
from hfchat.ui.controls import settings_controls
from hfchat.ui.render import to_messages

# Never called: the service is fake. An endpoint app builds no model at start-up.
FLAGS = ["--backend", "endpoint", "--endpoint-url", "http://127.0.0.1:9/v1", "--max-new-tokens", "16"]


def box(text: str) -> dict[str, Any]:
    return {"text": text, "files": []}


SERVICE = FakeService()
"""Shared by the module's app; each test starts it afresh (`fake`)."""


@pytest.fixture(scope="module")
def app() -> Iterator[RunningApp]:
    with running_app(parse_options(FLAGS, {}), SERVICE) as running:
        yield running


@pytest.fixture
def fake() -> FakeService:
    SERVICE.reset()
    return SERVICE


def plain(history: list[dict[str, Any]]) -> list[str]:
    """The user and answer texts of a history, without thinking or footers (metadata)."""
    return [content_text(m["content"]) for m in history if not m.get("metadata")]


def test_a_turn_sends_the_message_history_and_settings_by_name(app: RunningApp, fake: FakeService) -> None:
    fake.script("Hello, visitor.", "Still here.")
    visitor = app.client()
    first = visitor.predict(message=box("Hi"), temperature=0.3, system_prompt="Be brief.", api_name="/chat")
    assert answer_text(first) == "Hello, visitor."
    call = fake.calls[0]
    assert call.text == "Hi" and call.history == []
    assert call.values["temperature"] == 0.3 and call.values["system_prompt"] == "Be brief."
    assert call.values["backend"] == "endpoint" and call.values["max_new_tokens"] == 16, "flags fill the rest"
    assert call.session, "Gradio's session hash reaches the service (the rate limit counts it)"

    second = visitor.predict(message=box("And now?"), api_name="/chat")
    assert answer_text(second) == "Still here."
    assert plain(fake.calls[1].history) == ["Hi", "Hello, visitor."], "the client's history goes with the turn"
    assert fake.calls[1].session == call.session
    assert app.client().predict(message=box("Who?"), api_name="/chat") and fake.calls[2].history == [], "a new visitor"


def test_thinking_and_the_speed_line_come_back_as_their_own_messages(app: RunningApp, fake: FakeService) -> None:
    fake.script(Scripted("Four.", thinking="Two and two."), Scripted("Five."))
    shown = app.client().predict(message=box("2+2?"), api_name="/chat")
    titles = [(m.get("metadata") or {}).get("title") for m in shown]
    assert answer_text(shown) == "Four." and "Thinking" in titles
    assert content_text(next(m for m in shown if (m.get("metadata") or {}).get("title"))["content"]) == "Two and two."
    quiet = app.client().predict(message=box("2+3?"), show_speed=False, api_name="/chat")
    assert [m.get("metadata") for m in quiet] == [None], "without the speed line only the answer is left"


def test_stop_ends_the_service_stream(app: RunningApp, fake: FakeService) -> None:
    fake.script(Scripted("word " * 200, pieces=200, delay_s=0.05))
    job = app.client().submit(message=box("Tell me everything"), api_name="/chat")
    wait_until(lambda: len(job.outputs()) >= 3, 30, "the reply to stream")
    job.cancel()
    wait_until(lambda: fake.stopped == 1, 30, "Stop to close the service's stream")


def test_compare_sends_each_side_its_own_settings_at_once() -> None:
    """compare_turn (the compare tab's handler) on a FakeService: both sides stream at once."""
    both_in = threading.Barrier(2, timeout=10)

    def answer(call: FakeCall) -> str:
        both_in.wait()  # each side's turn runs while the other is in flight
        return f"{call.values['model']} answers {call.text}"

    fake = FakeService(answer=answer)
    sides = [Side([], {"backend": "providers", "model": "org/a"}), Side([], {"backend": "local", "model": "org/b"})]
    windows = list(compare_turn(fake, box("Hi"), sides, None, session="s1"))
    shown = [[[*side.asked, *to_messages(side.reply)] for side in update] for update in windows]
    assert [plain(w) for w in shown[0]] == [["Hi"], ["Hi"]], "the prompt shows on both sides first"
    assert [plain(w) for w in shown[-1]] == [["Hi", "org/a answers Hi"], ["Hi", "org/b answers Hi"]]
    assert sorted(c.values["model"] for c in fake.calls) == ["org/a", "org/b"]
    assert {c.session for c in fake.calls} == {"s1"}


def test_event_functions_have_real_annotations_and_the_reply_is_an_async_generator(app: RunningApp) -> None:
    """Gradio reads each event function's type hints on every event (`special_args`); string
    annotations are evaluated again each time (issue 14 measured 222 µs an event for `/chat`).
    The reply events are async generators, so no thread hand-off happens per update."""
    import inspect

    functions = [*app.demo.fns.values(), *compare_functions(app.options)]
    stringly = {
        fn.name: name
        for fn in functions
        if fn.fn is not None
        for name, hint in getattr(fn.fn, "__annotations__", {}).items()
        if isinstance(hint, str)
    }
    assert not stringly, f"event functions with string annotations: {stringly}"
    streamed = {fn.name for fn in functions if inspect.isasyncgenfunction(fn.fn)}
    assert {"respond", "chat_api", "run"} <= streamed, streamed


def compare_functions(options: AppOptions) -> list[BlockFunction]:
    """The Compare tab's event functions: a visitor's first opening of the tab creates them
    (`compare_tab`'s render), so they are not among the app's own; built here the same way."""
    with gr.Blocks() as demo:
        compare_panels(options, SERVICE, settings_controls(options), gr.Tabs())
    return list(demo.fns.values())


def test_the_compare_tab_is_built_when_a_visitor_opens_it(app: RunningApp) -> None:
    """Issue 14: Gradio builds every block's config for each new session, so the page's config
    holds the Compare tab only, not its two settings panels and windows; opening the tab
    renders them, for that visitor, with every control saying it is interactive (the page
    would infer it from its first config's events, which leave these out, and disable them)."""
    page = httpx.get(app.url + "config", timeout=30).json()
    ids = {c["props"].get("elem_id"): c["id"] for c in page["components"]}
    early = [e for e in ids if str(e).startswith("compare-") and e not in ("compare-tab", "compare-opened")]
    assert not early, f"built with the page: {early}"
    assert len(page["components"]) <= 125, len(page["components"])
    opened = ids["compare-opened"]
    renders = [d["id"] for d in page["dependencies"] if [opened, "change"] in [list(t) for t in d["targets"]]]
    assert len(renders) == 1, "one render, on the tab's first opening"
    body = {"data": [], "fn_index": renders[0], "trigger_id": opened, "session_hash": "compare1", "event_data": None}
    answer = httpx.post(app.url + "gradio_api/run/predict", json=body, timeout=30)
    answer.raise_for_status()
    rendered = {c["props"].get("elem_id"): c for c in answer.json()["render_config"]["components"]}
    controls = [f"compare-{side}-{name.replace('_', '-')}" for side in "ab" for name in TURN]
    wanted = {*controls, *(f"compare-{side}-{part}" for side in "ab" for part in ("chat", "settings"))}
    wanted |= {"compare-copy-a", "compare-copy-b", "compare-prompt", "compare-send", "compare-stop", "compare-status"}
    assert wanted <= set(rendered), f"missing from the Compare tab: {sorted(wanted - set(rendered))}"
    unsaid = [e for e in [*controls, "compare-prompt"] if rendered[e]["props"].get("interactive") is None]
    assert not unsaid, f"interactive left to the page: {unsaid}"


def test_the_streamed_reply_updates_only_the_window_and_its_data(app: RunningApp) -> None:
    """Gradio rebuilds every output a streamed update leaves out (a new component and its
    config: 1–5 ms each for the chat box, the list and the download buttons, issue 14), so the
    reply's event outputs only the window and states; the box and the list are drawn once after."""
    respond = [fn for fn in app.demo.fns.values() if fn.name == "respond"]
    assert respond
    for fn in respond:
        kinds = {type(block).__name__ for block in fn.outputs}
        assert kinds <= {"Chatbot", "State", "BrowserState"}, kinds
