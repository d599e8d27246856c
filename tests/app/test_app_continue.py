"""Continue, in-process: the app on the tiny local chat model, through `/chat` and `/continue`
(gradio_client, as an API caller), and the chat window's own events as the page wires them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from hfchat.backends import local
from hfchat.cache import ModelCache
from hfchat.chat import ChatService
from hfchat.cli import parse_options
from hfchat.continuation import cut_reply
from hfchat.messages import MessageKind, message_kind
from hfchat.testing import answer_text, wait_until
from hfchat.testing.app import RunningApp, running_app

QUESTION = {"text": "Tell me a story about a robot.", "files": []}


@pytest.fixture(scope="module")
def app(tiny_models: dict[str, Path]) -> Iterator[RunningApp]:
    flags = ["--backend", "local", "--model", str(tiny_models["chat"]), "--device", "cpu", "--do-sample", "false"]
    options = parse_options([*flags, "--max-new-tokens", "8"], {})
    with running_app(options, ChatService(cache=ModelCache(options.cache_size))) as running:
        yield running


def kinds(reply: list[dict[str, Any]]) -> list[MessageKind]:
    return [message_kind(m) for m in reply]


def footer(reply: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = [m for m in reply if message_kind(m) is MessageKind.FOOTER]
    return only


def test_api_continue_joins_the_cut_reply_under_one_footer(app: RunningApp) -> None:
    visitor = app.client()
    first = visitor.predict(message=QUESTION, api_name="/chat")
    assert footer(first)["figures"]["finish_reason"] == "length" and "stopped: length" in footer(first)["content"]
    again = visitor.predict(api_name="/continue")
    assert kinds(again) == [MessageKind.ANSWER, MessageKind.FOOTER], "one answer message, one footer"
    assert answer_text(again).startswith(answer_text(first)) and len(answer_text(again)) > len(answer_text(first))
    assert footer(again)["figures"]["output_tokens"] == 16 and "16 out (tokenizer)" in footer(again)["content"]

    longer = app.client().predict(message=QUESTION, max_new_tokens=16, api_name="/chat")
    assert footer(longer)["figures"]["output_tokens"] == 16
    third = visitor.predict(api_name="/continue")
    assert answer_text(third).startswith(answer_text(again)), "the session keeps the joined reply, and goes on"
    assert footer(third)["figures"]["output_tokens"] == 24


def test_api_continue_with_nothing_to_continue_says_so(app: RunningApp) -> None:
    visitor = app.client()
    with pytest.raises(AppError, match="There is no reply to continue"):
        visitor.predict(api_name="/continue")
    visitor.predict(message=QUESTION, max_new_tokens=200, api_name="/chat")  # ends for length or at EOS
    assert answer_text(visitor.predict(message=QUESTION, api_name="/chat")), "the next message works"


def test_stop_mid_continue_keeps_the_text(app: RunningApp) -> None:
    def generating() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == local.GENERATE_THREAD_NAME]

    visitor: Client = app.client()
    first = answer_text(visitor.predict(message=QUESTION, api_name="/chat"))
    job = visitor.submit(max_new_tokens=5000, api_name="/continue")
    wait_until(lambda: len(job.outputs()) >= 3, 60, "the continuation to stream")
    job.cancel()
    wait_until(lambda: not generating(), 10, "Stop to end the generate thread")
    kept = answer_text(job.outputs()[-1])
    assert kept.startswith(first) and len(kept) > len(first), "what was shown stays, the first part with it"
    assert answer_text(visitor.predict(message=QUESTION, api_name="/chat")), "the app keeps answering"


def event(app: RunningApp, name: str) -> Any:
    """The page's event function `name` (the chat window's own, as wired: not an API)."""
    return next(fn for fn in app.demo.fns.values() if fn.name == name)


def test_the_window_shows_continue_after_a_cut_reply_and_continue_starts_the_turn(
    app: RunningApp, tiny_models: dict[str, Path]
) -> None:
    """The page's events, called as Gradio calls them: `settle` (after a reply) shows Continue
    only under a reply that stopped for length; Continue's own event hides it, locks the box and
    hands the turn the cut reply (its question, its answer so far, its figures)."""
    cut = app.client().predict(message=QUESTION, api_name="/chat")
    # the think model's scripted reply ends at end-of-sequence: "stopped: stop"
    whole = app.client().predict(message=QUESTION, model=str(tiny_models["think"]), max_new_tokens=40, api_name="/chat")
    settle, start = event(app, "settle"), event(app, "go_on")
    go_on = next(block for block in settle.outputs if getattr(block, "elem_id", None) == "chat-continue")
    history_input = start.inputs[0]  # the window's history, Continue's one input

    def after(reply: list[dict[str, Any]]) -> bool:
        data = {block: None for block in settle.inputs} | {history_input: [{"role": "user", "content": "q"}, *reply]}
        return bool(settle.fn(data, None, None)[go_on]["visible"])  # no request: the meter draws empty

    assert after(cut) is True
    assert footer(whole)["figures"]["finish_reason"] == "stop"
    assert after(whole) is False

    history = [{"role": "user", "content": QUESTION["text"]}, *cut]
    out = start.fn(history)
    shown = {getattr(block, "elem_id", None): value for block, value in out.items()}
    assert shown["chat-continue"]["visible"] is False and shown["chat-box"]["interactive"] is False
    pending = next(value for value in out.values() if isinstance(value, dict) and "cut" in value)
    expected = cut_reply(history)
    assert expected is not None and pending["cut"] == expected
    assert pending["message"] == {"text": QUESTION["text"], "files": []}
    assert start.fn(history[:1]) and start.fn(history[:1])[go_on]["visible"] is False, "no cut reply: nothing starts"
