"""The context meter's wiring in the built app, over the real ChatService and a tiny local
model: which events redraw it (the box, the counted settings, the end of a reply), and what
the event's function draws as the text and the settings change. The browser test
(tests/browser/test_browser_meter.py) watches it update on the page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from hfchat.chat import ChatService
from hfchat.cli import parse_options
from hfchat.ui.app import build_app
from hfchat.ui.meter import COUNTED, METER_ID


@pytest.fixture(scope="module")
def built(tiny_models: dict[str, Path]) -> tuple[gr.Blocks, ChatService]:
    service = ChatService()
    options = parse_options(["--backend", "local", "--model", str(tiny_models["chat"]), "--max-new-tokens", "32"], {})
    return build_app(options, service), service


def meter_events(demo: gr.Blocks) -> list[Any]:
    return [f for f in demo.fns.values() if any(getattr(o, "elem_id", None) == METER_ID for o in f.outputs)]


def by_id(demo: gr.Blocks, elem_id: str) -> Any:
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_the_box_and_the_counted_settings_redraw_the_meter(built: tuple[gr.Blocks, ChatService]) -> None:
    demo, _ = built
    events = meter_events(demo)
    (typed,) = [f for f in events if (by_id(demo, "chat-box")._id, "change") in f.targets]
    assert typed.queue is False and typed.trigger_mode == "always_last"  # cheap, coalesced
    assert {event for _, event in typed.targets} == {"change"}
    assert len(typed.targets) == 1 + len(COUNTED)  # the box and each counted setting
    chained = [f for f in events if f.trigger_after is not None]
    settled = {getattr(demo.fns[f.trigger_after].fn, "__name__", "") for f in chained}
    assert {"undo", "clear", "stopped"} <= settled  # after undo, clear and Stop
    # after each reply the turn's own `settle` draws it (not in a request of its own)
    settles = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "settle"]
    meter = by_id(demo, "context-meter")
    assert settles and all(meter in f.outputs for f in settles)


def test_the_meter_counts_the_text_and_the_reserve(
    built: tuple[gr.Blocks, ChatService], tiny_models: dict[str, Path]
) -> None:
    demo, service = built
    update = meter_events(demo)[0].fn
    settings = {"backend": "local", "model": str(tiny_models["chat"]), "max_new_tokens": 32, "system_prompt": ""}

    def drawn(text: str, history: list[dict[str, Any]], **more: Any) -> str:
        return str(update({"text": text, "files": []}, history, None, None, **{**settings, **more}))

    empty, typed = drawn("", []), drawn("Tell me a long story about the sea and the ships on it.", [])
    assert count(typed) > count(empty) > 32
    assert "/ 8,192 tokens" in typed and "≈" not in typed  # the tiny model's own tokenizer
    assert count(drawn("hi", [], max_new_tokens=64)) == count(drawn("hi", [])) + 32
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]
    assert count(drawn("hi", history)) > count(drawn("hi", []))
    over = drawn("hi", [], max_new_tokens=8192)
    assert "meter-over" in over and "won't fit: the reply gets less than max_new_tokens" in over
    assert "System prompt, history and your message" in typed.split('title="', 1)[1]
    assert len(service.cache) == 0  # no model was loaded to count


def count(html: str) -> int:
    found = re.search(r'">≈?([\d,]+)(?: / [\d,]+)? tokens', html)  # the line, not its title
    assert found, html
    return int(found.group(1).replace(",", ""))
