"""One chat turn through ChatService.respond: streaming, loading notice, limits, tokens.

The fault matrix (every injected fault, through the running app) is tests/backends/test_faults.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.reply import answer_text
from hfchat.testing.servers import RecordingProxy
from hfchat.ui.render import to_messages
from hfchat.updates import Answer, Footer, Loading, Notice, ReplyView

HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def views(
    fn: Any, message: Any = "Hello there", history: list[dict[str, Any]] | None = None, **kw: Any
) -> list[ReplyView]:
    """Every view of the reply the chat window would show for one turn."""
    history = list(HISTORY if history is None else history)
    before = list(history)
    updates = list(fn(message, history, **kw))
    assert history == before, "a turn never changes the history it was given"
    return updates


def turn(fn: Any, message: Any = "Hello there", history: list[dict[str, Any]] | None = None, **kw: Any) -> list[str]:
    """The answer (or notice, or error) of every update the chat window would show for one turn."""
    return [answer_text(view) for view in views(fn, message, history, **kw)]


@pytest.fixture
def endpoint_chat(proxy: RecordingProxy) -> Iterator[Any]:
    options = parse_options(["--backend", "endpoint", "--endpoint-url", proxy.url, "--max-new-tokens", "8"], {})
    yield make_chat_fn(ChatService(cache=ModelCache(2), timeout=2), options)


def test_endpoint_reply_streams_in_several_updates(endpoint_chat: Any) -> None:
    updates = turn(endpoint_chat, max_new_tokens=12)
    assert len(updates) >= 2
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(updates))


def test_empty_message_is_refused() -> None:
    fn = make_chat_fn(ChatService(), parse_options([], {}))
    assert "Type a message" in turn(fn, message="   ")[-1]


def test_local_turn_shows_loading_then_the_reply(tiny_models: dict[str, Path]) -> None:
    fn = make_chat_fn(ChatService(), parse_options([], {}))
    model = str(tiny_models["chat"])
    updates = views(fn, backend="local", model=model, device="cpu", max_new_tokens=6)
    assert updates[0] == (Loading(model),) and updates[0][0].text.startswith(f"◔ Loading `{model}`")
    assert len(updates) >= 3 and all(isinstance(u, Answer | Footer) for u in updates[-1]), updates[-1]
    assert isinstance(updates[-1][-1], Footer) and updates[-1][0].text.strip()
    again = views(fn, backend="local", model=model, device="cpu", max_new_tokens=6)
    assert not any(isinstance(u, Loading) for view in again for u in view), "a cached model needs no loading notice"


def test_each_visitor_key_gets_its_own_client(proxy: RecordingProxy) -> None:
    """A custom endpoint's credential is the visitor's endpoint key (the HF token never goes
    there): each key gets its own client, and no key is in a cache key."""
    service = ChatService(cache=ModelCache(4), timeout=5)
    fn = make_chat_fn(service, parse_options(["--backend", "endpoint", "--endpoint-url", proxy.url], {}))
    for key in ("visitor-key-a", "visitor-key-b", "visitor-key-a"):
        assert not turn(fn, endpoint_api_key=key, hf_token="hf_visitor", max_new_tokens=3)[-1].startswith("⚠")
    assert service.cache.stats.builds == 2, "two keys, two clients; the same key reuses its own"
    assert all("visitor-key" not in repr(key) and "hf_visitor" not in repr(key) for key in service.cache.cached_keys())
    sent = {r.headers.get("authorization") for r in proxy.requests if r.method == "POST"}
    assert sent == {"Bearer visitor-key-a", "Bearer visitor-key-b"}


def test_offline_mode_blocks_providers_with_a_message_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    fn = make_chat_fn(ChatService(timeout=5), parse_options([], {}))
    shown = turn(fn, backend="providers", model="org/model", provider="together", hf_token="hf_x")[-1]
    assert "HF_HUB_OFFLINE" in shown and shown.startswith("⚠ **Offline mode.**")


def limited_chat(proxy: RecordingProxy, *flags: str) -> Any:
    options = parse_options(["--backend", "endpoint", "--endpoint-url", proxy.url, "--max-new-tokens", "4", *flags], {})
    return make_chat_fn(
        ChatService(cache=ModelCache(2), timeout=5, retry=options.retry, limits=options.limits), options
    )


def test_an_overlong_message_or_system_prompt_is_refused_before_any_request(proxy: RecordingProxy) -> None:
    fn = limited_chat(proxy, "--max-message-chars", "50")
    shown = turn(fn, message="x" * 51)[-1]
    assert shown.startswith("⚠ **Invalid setting.**") and "message: 51 characters" in shown
    assert "limit of 50" in shown and "Shorten it" in shown
    shown = turn(fn, system_prompt="s" * 60)[-1]
    assert "system_prompt: 60 characters" in shown
    blocks = [{"type": "text", "text": "y" * 30}, {"type": "text", "text": "z" * 30}]
    assert "message: 61 characters" in turn(fn, message=blocks)[-1], "Gradio 6 blocks count too"
    assert proxy.requests == [], "nothing was sent"
    assert not turn(fn, message="x" * 50)[-1].startswith("⚠"), "at the limit is fine"


def test_a_long_history_is_trimmed_oldest_first_with_a_notice(proxy: RecordingProxy) -> None:
    fn = limited_chat(proxy, "--max-history-chars", "30")
    history = [
        {"role": "user", "content": "first question " * 2},
        {"role": "assistant", "content": "first answer " * 2},
        {"role": "user", "content": "second q"},
        {"role": "assistant", "content": "second a"},
    ]
    last = views(fn, message="third", history=history)[-1]
    notice, answer = last[0], last[1]
    assert isinstance(notice, Notice) and isinstance(answer, Answer), last
    assert notice.text.startswith("✂") and "2 oldest messages" in notice.text and "--max-history-chars" in notice.text
    shown = answer_text(to_messages(last))
    assert shown.startswith("✂") and shown.endswith(answer.text), "API clients read the notice, then the answer"
    reply = answer.text
    sent = [(m["role"], m["content"]) for m in proxy.requests[-1].json["messages"]]
    assert sent == [("user", "second q"), ("assistant", "second a"), ("user", "third")]
    proxy.clear()
    later = [*history, {"role": "user", "content": "third"}, *to_messages(last)]
    turn(fn, message="fourth", history=later)
    sent = [(m["role"], m["content"]) for m in proxy.requests[-1].json["messages"]]
    assert ("assistant", reply) in sent
    assert not any("✂" in text for _, text in sent), "the notice never reaches the model"
